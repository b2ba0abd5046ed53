"""Metrics against the reference tool (pycocoevalcap: live, and pinned in tests/data/caption_reference.json,
recomputed by tools/caption_reference.py) and hand-computed values."""
import json
import math
import shutil
from pathlib import Path

import pytest
from ofa_prompt.metrics import bleu, box_iou, cider_d, grounding_hits, java_caption_metrics

REFERENCE = json.loads((Path(__file__).parent / "data" / "caption_reference.json").read_text())
HYPS, REFS = REFERENCE["hypotheses"], REFERENCE["references"]


def test_bleu_equals_pycocoevalcap():
    assert bleu(HYPS, REFS) == pytest.approx(REFERENCE["bleu_1_4"], rel=1e-12)


def test_cider_d_equals_pycocoevalcap():
    score, per_image = cider_d(HYPS, REFS)
    assert score == pytest.approx(REFERENCE["cider_d"], rel=1e-12)
    assert per_image == pytest.approx(REFERENCE["cider_d_per_image"], rel=1e-12)


def test_bleu_and_cider_d_equal_the_installed_pycocoevalcap():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    gts, res = dict(enumerate(REFS)), {i: [h] for i, h in enumerate(HYPS)}
    assert bleu(HYPS, REFS) == pytest.approx(Bleu(4).compute_score(gts, res, verbose=0)[0], rel=1e-12)
    assert cider_d(HYPS, REFS)[0] == pytest.approx(Cider().compute_score(gts, res)[0], rel=1e-12)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR runs pycocoevalcap's Java scorer")
def test_meteor_through_pycocoevalcap_orders_captions():
    """METEOR of a caption equal to its reference is near 1 (only the fragmentation penalty 0.5 / m^3 is left);
    the corpus score of it and an unrelated caption lies far below (one JVM start each, ~13 s)."""
    ref = ["a man is riding a brown horse along the beach at sunset"]
    same, skipped = java_caption_metrics(ref, [ref], which=("meteor",))
    assert not skipped and same["meteor"] > 0.95
    both, _ = java_caption_metrics([ref[0], "two cats sleep on a sofa"], [ref, ref], which=("meteor",))
    assert both["meteor"] < 0.8


def test_a_java_scorer_that_cannot_run_is_skipped_with_its_reason(monkeypatch):
    """SPICE downloads Stanford CoreNLP on first use; offline that fails, and the caption run goes on without it."""
    import urllib.error

    from pycocoevalcap.spice import spice

    def offline(self, gts, res):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(spice.Spice, "compute_score", offline)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/java")
    scores, skipped = java_caption_metrics(["a dog"], [["a dog runs"]], which=("spice",))
    assert scores == {} and "URLError" in skipped["spice"] and "Name or service" in skipped["spice"]
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert java_caption_metrics(["a"], [["a"]]) == ({}, {"meteor": "no java on PATH", "spice": "no java on PATH"})
    with pytest.raises(ValueError, match="unknown"):
        java_caption_metrics(["a"], [["a"]], which=("rouge",))


def test_bleu_by_hand():
    """'a b c d' vs 'a b c e': p1 = 3/4, p2 = 2/3, p3 = 1/2, p4 = 0 (-> ~0), equal lengths (no penalty)."""
    b = bleu(["a b c d"], [["a b c e"]])
    assert b[0] == pytest.approx(0.75, rel=1e-6)
    assert b[1] == pytest.approx((0.75 * 2 / 3) ** 0.5, rel=1e-6)
    assert b[2] == pytest.approx((0.75 * 2 / 3 * 0.5) ** (1 / 3), rel=1e-6)
    assert b[3] < 1e-3
    short = bleu(["a b"], [["a b c d"]])                       # brevity penalty exp(1 - 4/2)
    assert short[0] == pytest.approx(math.exp(-1), rel=1e-6)


def test_iou_and_grounding_hits_by_hand():
    assert box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == (pytest.approx(1 / 7), True)
    assert box_iou((0, 0, 1, 1), (1, 1, 2, 2)) == (0.0, False)        # touching is no overlap
    assert grounding_hits([(0, 0, 10, 10), (0, 0, 10, 10), None],
                          [(0, 0, 10, 12), (5, 5, 15, 15), (0, 0, 1, 1)]) == [1.0, 0.0, 0.0]


def test_caption_evaluation_runs_beam_search_and_scores(tmp_path):
    """The caption path end to end on a generated TSV: references split on '&&', hypotheses decoded by beam search
    and scored; a model that is not trained scores low but finite."""
    import types

    import torch
    from ofa_prompt.data import TaskDataset, read_tsv, write_synthetic_caption
    from ofa_prompt.evaluate import evaluate
    from ofa_prompt.model import OFA, OFAConfig
    from ofa_prompt.tokenizer import OFATokenizer

    path = write_synthetic_caption(tmp_path / "caption.tsv", num=3)
    rows = read_tsv(path, "caption")
    bpe = OFATokenizer.train_official_files(["a red circle the square is blue what does the image describe"] * 10,
                                            tmp_path / "bpe", vocab_size=200)
    tok = OFATokenizer.from_official(bpe, num_codes=4, num_bins=10)
    data = TaskDataset(rows, "caption", tok, patch_size=32)
    assert data[0]["refs"][0].startswith("a ") and len(data[0]["refs"]) == 2 and "." not in data[0]["refs"][0]
    torch.manual_seed(0)
    model = OFA(OFAConfig(vocab_size=tok.vocab_size, encoder_layers=1, decoder_layers=1, embed_dim=32, heads=4,
                          ffn_dim=64, resnet_layers=(1, 1, 1), max_positions=64, token_bucket_size=16,
                          image_bucket_size=4))
    out = evaluate(model, data, tok, "caption", "cpu", types.SimpleNamespace(eval_batch_size=2, beam=2),
                   out_dir=tmp_path)
    assert set(out) == {"bleu4", "cider"} and all(math.isfinite(v) for v in out.values())
    assert (tmp_path / "predictions.jsonl").read_text().count("\n") == 3
