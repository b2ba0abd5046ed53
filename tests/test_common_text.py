"""common/data/text_classification.py readers (real file formats, hand-written samples) and
common/metrics/text.py against scikit-learn / hand-computed values."""
import json

import numpy as np
import pytest
from sklearn.metrics import f1_score
from sklearn.metrics import matthews_corrcoef as sk_mcc

from common.data.text_classification import (
    TASKS,
    TaskSpec,
    TextExample,
    read_agnews_csv,
    read_glue_tsv,
    read_imdb_csv,
    read_jsonl_records,
    read_split,
    read_superglue_jsonl,
    split_path,
    synthetic_vocab,
    write_synthetic_agnews,
)
from common.errors import DataError
from common.metrics.text import binary_f1, matthews_corrcoef, multirc_scores, task_metrics


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_superglue_readers(tmp_path):
    boolq = write_jsonl(tmp_path / "b.jsonl", [{"passage": "P", "question": "q?", "label": True, "idx": 0},
                                               {"passage": "P2", "question": "q2?", "idx": 1}])  # test: no label
    assert read_superglue_jsonl(boolq, "boolq") == [TextExample("P", "q?", 1), TextExample("P2", "q2?", None)]
    cb = write_jsonl(tmp_path / "cb.jsonl", [{"premise": "a", "hypothesis": "b", "label": "neutral", "idx": 0}])
    assert read_superglue_jsonl(cb, "cb")[0].label == 2
    wic = write_jsonl(tmp_path / "w.jsonl", [{"word": "bank", "sentence1": "s1", "sentence2": "s2", "label": False,
                                             "idx": 0, "start1": 0, "end1": 1, "start2": 0, "end2": 1}])
    assert read_superglue_jsonl(wic, "wic")[0] == TextExample("bank: s1", "s2", 0)
    copa = write_jsonl(tmp_path / "c.jsonl", [{"premise": "It rained.", "choice1": "x", "choice2": "y",
                                              "question": "effect", "label": 1, "idx": 0}])
    ex = read_superglue_jsonl(copa, "copa")[0]
    assert ex.label == 1 and "x or y" in ex.text_b and "so" in ex.text_a
    multirc = write_jsonl(tmp_path / "m.jsonl", [{"idx": 3, "passage": {"text": "T", "questions": [
        {"idx": 0, "question": "Q0", "answers": [{"idx": 0, "text": "A", "label": 1}, {"idx": 1, "text": "B",
                                                                                        "label": 0}]},
        {"idx": 1, "question": "Q1", "answers": [{"idx": 2, "text": "C", "label": 0}]}]}}])
    rows = read_superglue_jsonl(multirc, "multirc")
    assert [r.label for r in rows] == [1, 0, 0] and rows[0].group == rows[1].group != rows[2].group
    assert rows[0].text_b == "Q0 A"


def test_superglue_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "rte.jsonl"
    bad.write_text(json.dumps({"premise": "a", "hypothesis": "b", "label": "entailment"}) + "\n{oops\n")
    with pytest.raises(DataError, match=r"rte.jsonl:2"):
        read_superglue_jsonl(bad, "rte")
    bad.write_text(json.dumps({"premise": "a", "hypothesis": "b", "label": "maybe"}) + "\n")
    with pytest.raises(DataError, match=r":1: label 'maybe'"):
        read_superglue_jsonl(bad, "rte")
    bad.write_text(json.dumps({"premise": "a"}) + "\n")
    with pytest.raises(DataError, match="without field"):
        read_superglue_jsonl(bad, "rte")


def test_glue_tsv_readers(tmp_path):
    sst = tmp_path / "SST-2"
    sst.mkdir()
    (sst / "train.tsv").write_text("sentence\tlabel\nit 's good \t1\nbad \" movie\t0\n")
    expected = [TextExample("it 's good ", None, 1), TextExample('bad " movie', None, 0)]
    assert read_split(sst, "sst2", "train") == expected
    assert split_path(sst, "sst2", "dev").name == "dev.tsv"
    mrpc = tmp_path / "mrpc.tsv"
    mrpc.write_text("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tA b\tC d\n")
    assert read_glue_tsv(mrpc, "mrpc") == [TextExample("A b", "C d", 1)]
    rte_test = tmp_path / "rte_test.tsv"
    rte_test.write_text("index\tsentence1\tsentence2\n0\tx\ty\n")
    assert read_glue_tsv(rte_test, "glue_rte") == [TextExample("x", "y", None)]
    cola = tmp_path / "cola.tsv"
    cola.write_text("gj04\t1\t\tThe sailors rode.\ngj04\t0\t*\tRode sailors the.\n")
    assert [e.label for e in read_glue_tsv(cola, "cola")] == [1, 0]
    short = tmp_path / "short.tsv"
    short.write_text("index\tsentence1\tsentence2\tlabel\n0\tx\n")
    with pytest.raises(DataError, match=r"short.tsv:2: expected 4"):
        read_glue_tsv(short, "glue_rte")


def test_csv_readers_and_missing_dataset(tmp_path):
    ag = tmp_path / "train.csv"
    ag.write_text('"3","Wall St. Bears","Short-sellers\\band of ultra-cynics"\n')
    assert read_agnews_csv(ag) == [TextExample("Wall St. Bears", "Short-sellers band of ultra-cynics", 2)]
    imdb = tmp_path / "imdb.csv"
    imdb.write_text('review,sentiment\n"Great<br />film, really",positive\nmeh,negative\n')
    assert read_imdb_csv(imdb) == [TextExample("Great film, really", None, 1), TextExample("meh", None, 0)]
    imdb.write_text("text,label\n")
    with pytest.raises(DataError, match="header review,sentiment"):
        read_imdb_csv(imdb)
    with pytest.raises(DataError, match="BoolQ"):
        read_split(tmp_path / "nowhere", "boolq", "train")
    assert isinstance(TASKS["cb"], TaskSpec) and TASKS["cb"].metrics == ("accuracy", "macro_f1")


def test_synthetic_task_is_learnable_and_read_back(tmp_path):
    folder = write_synthetic_agnews(tmp_path / "syn", num_train=200, num_test=50, seed=1)
    train = read_split(folder, "agnews", "train")
    assert len(train) == 200 and len(read_split(folder, "agnews", "test")) == 50
    assert {e.label for e in train} == {0, 1, 2, 3}
    vocab = set(synthetic_vocab())
    assert all(w in vocab for e in train for w in (e.text_a + " " + e.text_b).split())
    # the planted signal: a keyword lookup classifier over the first tokens of the title is exact
    from common.data.text_classification import TOPIC_WORDS
    word_class = {w: c for c, ws in enumerate(TOPIC_WORDS) for w in ws}
    pred = [next(word_class[w] for w in e.text_a.split() if w in word_class) for e in train]
    assert pred == [e.label for e in train]
    assert (folder / "train.csv").read_text() == write_synthetic_agnews(
        tmp_path / "again", num_train=200, num_test=50, seed=1).joinpath("train.csv").read_text()


def test_text_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    assert binary_f1(y, p) == pytest.approx(f1_score(y, p))
    assert matthews_corrcoef(y, p) == pytest.approx(sk_mcc(y, p))
    assert matthews_corrcoef(y, np.ones_like(y)) == 0.0
    y3, p3 = rng.integers(0, 3, 100), rng.integers(0, 3, 100)
    m = task_metrics(("accuracy", "macro_f1"), y3, p3, 3)
    assert m["accuracy"] == pytest.approx((y3 == p3).mean())
    assert m["macro_f1"] == pytest.approx(f1_score(y3, p3, average="macro"))
    assert task_metrics(("mcc", "f1"), y, p, 2)["f1"] == pytest.approx(f1_score(y, p))
    with pytest.raises(ValueError, match="unknown metric"):
        task_metrics(("bleu",), y, p, 2)


def test_multirc_exact_match_and_f1a_by_hand():
    y = [1, 0, 1, 1, 0]
    p = [1, 0, 0, 1, 1]
    groups = [0, 0, 1, 1, 2]  # question 0 all right; question 1 one wrong; question 2 wrong
    s = multirc_scores(y, p, groups)
    assert s["exact_match"] == pytest.approx(1 / 3)
    assert s["f1a"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))  # TP 2, FP 1, FN 1
    assert task_metrics(("exact_match", "f1a"), y, p, 2, groups=groups)["exact_match"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="group"):
        task_metrics(("f1a",), y, p, 2)


def test_jsonl_records_skip_blank_lines_and_name_bad_lines(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert list(read_jsonl_records(path)) == [(1, {"a": 1}), (3, {"a": 2})]
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"x.jsonl:2: expected a JSON object, got list"):
        list(read_jsonl_records(path))
    path.write_text('{"a": 1\n')
    with pytest.raises(DataError, match=r"x.jsonl:1: not valid JSON"):
        list(read_jsonl_records(path))
