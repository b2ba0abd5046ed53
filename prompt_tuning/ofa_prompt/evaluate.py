"""Evaluation per task as the official scripts run it (research note §6.7, §6.9).

* refcoco: beam 5, exactly 4 generated tokens (min_len 4, max_len 4), no repeated 3-grams, no vocabulary
  constraint (run_scripts/refcoco/evaluate_refcoco.sh); bins -> pixels; Acc@0.5.
* caption: beam 5, at most 16 tokens, no repeated 3-grams (run_scripts/caption/evaluate_caption.sh), punctuation
  stripped from hypotheses (EU:48-55); BLEU-4 and CIDEr-D as pycocoevalcap computes them, on lowercased,
  punctuation-free words (the official coco_eval.py tokenises with the Java PTB tokenizer first); with
  `java_metrics`, METEOR and SPICE through pycocoevalcap's Java scorers where Java (and, for SPICE, its CoreNLP
  download) is available, and the reason in `skipped_metrics` where not.
* snli_ve / vqa: all-candidate scoring: the source without </s> as the decoder prompt, each candidate answer's
  summed log-probability under the trie mask, argmax (tasks/mm_tasks/vqa_gen.py:205-257); accuracy / VQA score.
"""
import json

import torch

from .data import collate
from .generate import answer_trie, beam_search, score_candidates
from .metrics import answer_scores, bins_to_box, bleu, cider_d, grounding_hits, java_caption_metrics, mean
from .tokenizer import strip_punctuation


@torch.no_grad()
def evaluate(model, dataset, tok, task, device, cfg, out_dir=None, java_metrics=False):
    """Metrics (fractions) of `model` on `dataset`; with out_dir, predictions.jsonl is written there; java_metrics
    adds METEOR and SPICE for captions (seconds of JVM start-up, so for the final test only)."""
    was_training = model.training
    model.eval()
    records = []
    trie = answer_trie(tok, dataset.answers) if dataset.answers else None
    for i in range(0, len(dataset), cfg.eval_batch_size):
        samples = [dataset[j] for j in range(i, min(len(dataset), i + cfg.eval_batch_size))]
        batch = collate(samples)
        enc = model.encoder(batch["src"].to(device), batch["image"].to(device))
        if task == "refcoco":
            hyps = beam_search(model, enc, beam=cfg.beam, max_len=4, min_len=4, no_repeat_ngram=3)
            boxes = [bins_to_box(h[0][0], tok, s["ratio"], cfg.max_image_size)
                     for h, s in zip(hyps, samples, strict=True)]
            hits = grounding_hits(boxes, [s["box"].tolist() for s in samples])
            records += [{"uid": s["uid"], "box": b, "hit": h} for s, b, h in zip(samples, boxes, hits, strict=True)]
        elif task == "caption":
            hyps = beam_search(model, enc, beam=cfg.beam, max_len=16, min_len=1, no_repeat_ngram=3)
            records += [{"uid": s["uid"], "caption": strip_punctuation(tok.decode(h[0][0])).lower(), "refs": s["refs"]}
                        for h, s in zip(hyps, samples, strict=True)]
        else:
            scores = score_candidates(model, enc, [s["prompt"] for s in samples], dataset.answer_tokens, trie=trie)
            preds = [dataset.answers[k] for k in scores.argmax(1).tolist()]
            hits = answer_scores(preds, [s["refs"] for s in samples])
            records += [{"uid": s["uid"], "answer": p, "hit": h} for s, p, h in zip(samples, preds, hits, strict=True)]
    model.train(was_training)
    if out_dir is not None:
        with open(f"{out_dir}/predictions.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
    if task == "caption":
        hyps, refs = [r["caption"] for r in records], [r["refs"] for r in records]
        out = {"bleu4": bleu(hyps, refs)[3], "cider": cider_d(hyps, refs)[0]}
        if java_metrics:
            scores, skipped = java_caption_metrics(hyps, refs)
            out.update(scores)
            if skipped:
                out["skipped_metrics"] = skipped
        return out
    value = mean([r["hit"] for r in records])
    return {"vqa_score" if task == "vqa" else "accuracy": value}
