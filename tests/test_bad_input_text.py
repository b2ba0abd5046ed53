"""Bad-input suite for the text-classification readers (`common.data.text_classification.read_split`):
SuperGLUE JSONL, GLUE TSV, AG News and IMDB CSV.

Each case takes a freshly written valid split (AG News from `write_synthetic_agnews`; small RTE JSONL / TSV and
IMDB files written here in the released formats), corrupts one thing, and reads it through `read_split`, which
must stop with a `DataError` naming the file and the line. Part of the table-driven bad-input suites
(`tests/test_bad_input_<format>.py`): a new reader must join them with a table of its own (at least 8 cases),
and a new check in a reader adds a row here.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

from common.data.text_classification import read_split, write_synthetic_agnews
from common.errors import DataError, read_utf8

RTE_ROWS = [{"premise": f"p{i}", "hypothesis": f"h{i}", "label": ["entailment", "not_entailment"][i % 2], "idx": i}
            for i in range(6)]


def write_valid(folder, task):
    """A valid split of `task` in its released format -> (split name, file path)."""
    folder.mkdir(parents=True, exist_ok=True)
    if task == "agnews":
        write_synthetic_agnews(folder, num_train=12, num_test=4)
        return "train", folder / "train.csv"
    if task == "rte":
        path = folder / "val.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in RTE_ROWS))
        return "val", path
    if task == "glue_rte":
        path = folder / "dev.tsv"
        path.write_text("index\tsentence1\tsentence2\tlabel\n" + "".join(
            f"{r['idx']}\t{r['premise']}\t{r['hypothesis']}\t{r['label']}\n" for r in RTE_ROWS))
        return "dev", path
    path = folder / "train.csv"
    path.write_text('review,sentiment\n"good film<br />yes",positive\n"dull, long",negative\n')
    return "train", path


def set_line(line, text):
    def corrupt(path):
        rows = path.read_bytes().split(b"\n")
        rows[line - 1] = text if isinstance(text, bytes) else text.encode()
        path.write_bytes(b"\n".join(rows))
    return corrupt


def jsonl_row(line, **change):
    row = {k: v for k, v in {**RTE_ROWS[line - 1], **change}.items() if v != "DROP"}
    return set_line(line, json.dumps(row))


def empty(path):
    path.write_text("")


def drop_label_column(path):
    path.write_text("\n".join(r.rsplit("\t", 1)[0] for r in path.read_text().splitlines()) + "\n")


# (case, task, corrupt(path), line or None, message fragment)
CASES = [
    ("jsonl_non_utf8", "rte", set_line(3, b'{"premise": "caf\xe9", "hypothesis": "h", "label": "entailment"}'), 3,
     "expected UTF-8 text"),
    ("jsonl_broken_json", "rte", set_line(2, '{"premise": "a", '), 2, "not valid JSON"),
    ("jsonl_not_an_object", "rte", set_line(4, '["a", "b"]'), 4, "expected a JSON object"),
    ("jsonl_null_label", "rte", jsonl_row(2, label=None), 2, "without a label"),
    ("jsonl_missing_label", "rte", jsonl_row(5, label="DROP"), 5, "without a label"),
    ("jsonl_unknown_label", "rte", jsonl_row(1, label="maybe"), 1, "label 'maybe' is not one of"),
    ("jsonl_missing_field", "rte", jsonl_row(3, hypothesis="DROP"), 3, "record without field 'hypothesis'"),
    ("jsonl_empty_file", "rte", empty, None, "no RTE examples"),
    ("csv_non_utf8", "agnews", set_line(5, b'"2","caf\xe9 market","shares"'), 5, "expected UTF-8 text"),
    ("csv_class_out_of_range", "agnews", set_line(2, '"5","market","shares"'), 2, "label '5' is not one of"),
    ("csv_empty_class", "agnews", set_line(3, '"","market","shares"'), 3, "label '' is not one of"),
    ("csv_two_fields", "agnews", set_line(4, '"1","market"'), 4, "expected 3 comma-separated fields"),
    ("csv_empty_file", "agnews", empty, None, "no ag_news examples"),
    ("tsv_no_label_column", "glue_rte", drop_label_column, 1, "lacks the label column 'label'"),
    ("tsv_short_row", "glue_rte", set_line(3, "1\tp1"), 3, "expected 4 tab-separated columns"),
    ("tsv_non_utf8", "glue_rte", set_line(2, b"0\tp\xff\th0\tentailment"), 2, "expected UTF-8 text"),
    ("tsv_unknown_label", "glue_rte", set_line(4, "2\tp2\th2\tneutral"), 4, "label 'neutral' is not one of"),
    ("imdb_wrong_header", "imdb", set_line(1, "text,label"), 1, "expected the header review,sentiment"),
    ("imdb_unknown_sentiment", "imdb", set_line(3, '"dull",meh'), 3, "label 'meh' is not one of"),
]


@pytest.mark.parametrize("task", ["agnews", "rte", "glue_rte", "imdb"])
def test_valid_data_reads(tmp_path, task):
    split, _ = write_valid(tmp_path, task)
    examples = read_split(tmp_path, task, split)
    assert examples and all(e.label is not None for e in examples)


def test_read_utf8_names_the_line_of_a_bad_byte(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("caf\u00e9\nok\n".encode() + b"\xff\n")
    with pytest.raises(DataError) as e:
        read_utf8(path)
    assert e.value.line == 3 and "invalid start byte" in str(e.value)
    path.write_bytes(b"\xef\xbb\xbfid\n")
    assert read_utf8(path, "utf-8-sig") == "id\n"


def test_test_split_may_leave_labels_out(tmp_path):
    (tmp_path / "test.jsonl").write_text("".join(json.dumps({**r, "label": None}) + "\n" for r in RTE_ROWS))
    assert [e.label for e in read_split(tmp_path, "rte", "test")] == [None] * 6


@pytest.mark.parametrize("task, corrupt, line, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_data_error_naming_the_file(tmp_path, task, corrupt, line, fragment):
    split, path = write_valid(tmp_path, task)
    corrupt(path)
    with pytest.raises(DataError) as e:
        read_split(tmp_path, task, split)
    assert e.value.path == str(path), str(e.value)
    assert fragment in str(e.value)
    assert e.value.line == line, str(e.value)


def run_train(method_dir, cwd, *args):
    """The method's real train.sh in a subprocess (one thread) -> CompletedProcess."""
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(repo / method_dir / "train.sh"), "--config", "configs/smoke.yaml", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_ipt_train_stops_on_a_null_label(tmp_path):
    """Issue 12: a null RTE label crashed training with `IndexError: Target -1`."""
    (tmp_path / "RTE").mkdir()
    rows = RTE_ROWS[:2] + [{**RTE_ROWS[2], "label": None}]
    for split in ("train", "val"):
        (tmp_path / "RTE" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run_train("prompt_tuning/ipt", tmp_path, "--task", "rte", "--data_root", ".", "--out_dir", "run")
    assert out.returncode == 2, out.stderr[-2000:]
    assert "RTE/train.jsonl:3: rte example without a label" in out.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()
