"""Text-classification datasets in their released on-disk formats, and a small learnable generated task.

Readers (each returns a list of `TextExample`, labels as class ids into the task's `labels` tuple):
* SuperGLUE JSONL (`train.jsonl`, `val.jsonl`, `test.jsonl`): BoolQ, CB, RTE, MultiRC (one example per
  answer option, grouped by question), WiC, COPA.
* GLUE TSV (`train.tsv`, `dev.tsv`, `test.tsv`): SST-2, MRPC, RTE, QNLI, QQP, CoLA, MNLI (`dev_matched.tsv`).
* AG News CSV (`train.csv`, `test.csv`: class 1-4, title, description, no header) and IMDB CSV
  (`IMDB Dataset.csv` style: header `review,sentiment`, positive/negative).
Test splits without labels get label None; `read_split` requires a label on every example of the other splits
(a null or missing label there is a DataError naming the file and line, not a silent "test" example).
Bytes that are not UTF-8 are a DataError naming the file and line.
"""
import csv
import dataclasses
import io
import json
import random
from pathlib import Path

from ..errors import DataError, read_utf8


@dataclasses.dataclass
class TextExample:
    text_a: str
    text_b: str | None = None
    label: int | None = None
    group: int | None = None  # MultiRC: the question an answer option belongs to (for exact match)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    name: str
    format: str          # superglue | glue | agnews | imdb
    folder: str          # the dataset's usual folder name under the data root
    labels: tuple        # label values as they appear in the files, in class-id order
    metrics: tuple       # metric names computed by common.metrics.text.task_metrics
    splits: tuple = ("train", "val", "test")


TASKS = {
    "boolq": TaskSpec("boolq", "superglue", "BoolQ", (False, True), ("accuracy",)),
    "cb": TaskSpec("cb", "superglue", "CB", ("entailment", "contradiction", "neutral"), ("accuracy", "macro_f1")),
    "rte": TaskSpec("rte", "superglue", "RTE", ("entailment", "not_entailment"), ("accuracy",)),
    "multirc": TaskSpec("multirc", "superglue", "MultiRC", (0, 1), ("exact_match", "f1a")),
    "wic": TaskSpec("wic", "superglue", "WiC", (False, True), ("accuracy",)),
    "copa": TaskSpec("copa", "superglue", "COPA", (0, 1), ("accuracy",)),
    "sst2": TaskSpec("sst2", "glue", "SST-2", ("0", "1"), ("accuracy",), ("train", "dev", "test")),
    "mrpc": TaskSpec("mrpc", "glue", "MRPC", ("0", "1"), ("accuracy", "f1"), ("train", "dev", "test")),
    "glue_rte": TaskSpec("glue_rte", "glue", "RTE", ("entailment", "not_entailment"), ("accuracy",),
                         ("train", "dev", "test")),
    "qnli": TaskSpec("qnli", "glue", "QNLI", ("entailment", "not_entailment"), ("accuracy",),
                     ("train", "dev", "test")),
    "qqp": TaskSpec("qqp", "glue", "QQP", ("0", "1"), ("accuracy", "f1"), ("train", "dev", "test")),
    "cola": TaskSpec("cola", "glue", "CoLA", ("0", "1"), ("mcc", "accuracy"), ("train", "dev", "test")),
    "mnli": TaskSpec("mnli", "glue", "MNLI", ("entailment", "neutral", "contradiction"), ("accuracy",),
                     ("train", "dev_matched", "test_matched")),
    "agnews": TaskSpec("agnews", "agnews", "ag_news", ("1", "2", "3", "4"), ("accuracy", "macro_f1"),
                       ("train", "test")),
    "imdb": TaskSpec("imdb", "imdb", "imdb", ("negative", "positive"), ("accuracy",), ("train", "test")),
}

# GLUE TSV columns per task: (text_a, text_b or None, label or None); CoLA has no header row.
_GLUE_COLUMNS = {"sst2": ("sentence", None, "label"), "mrpc": ("#1 String", "#2 String", "Quality"),
                 "glue_rte": ("sentence1", "sentence2", "label"), "qnli": ("question", "sentence", "label"),
                 "qqp": ("question1", "question2", "is_duplicate"), "mnli": ("sentence1", "sentence2", "gold_label")}
_CSV_HINT = "download the dataset and pass --data_root with the folder holding it"


def split_path(root, task, split):
    """The file of `split` for `task` under `root` (the task's folder, e.g. <data_root>/BoolQ)."""
    spec = TASKS[task]
    ext = {"superglue": "jsonl", "glue": "tsv", "agnews": "csv", "imdb": "csv"}[spec.format]
    return Path(root) / f"{split}.{ext}"


def read_split(root, task, split):
    """Read one split of `task` from its folder `root` -> list of TextExample.

    Every split except the test splits (name starting with "test") must label every example, and no split may
    be empty; either is a DataError naming the file.
    """
    spec = TASKS[task]
    path = split_path(root, task, split)
    if not path.is_file():
        raise DataError(path, f"{spec.name} {split} split not found",
                        hint=f"download {spec.folder} ({spec.format} format) and point --data_root at its parent")
    reader = {"superglue": read_superglue_jsonl, "glue": read_glue_tsv, "agnews": read_agnews_csv,
              "imdb": read_imdb_csv}[spec.format]
    examples = reader(path, task, labelled=not split.startswith("test"))
    if not examples:
        raise DataError(path, f"no {spec.folder} examples in this {split} split (an empty file?)")
    return examples


def _label_id(path, line, spec, value, labelled=False):
    if value is None:
        if labelled:
            raise DataError(path, f"{spec.name} example without a label (expected one of {spec.labels}); only test "
                            "splits may leave labels out", line=line)
        return None
    for i, lab in enumerate(spec.labels):
        if value == lab or str(value) == str(lab):
            return i
    raise DataError(path, f"label {value!r} is not one of {spec.labels}", line=line)


def read_jsonl_records(path):
    """Yield (line number, dict) for every non-blank line of a JSONL file; a line that is not valid JSON or not a
    JSON object is a DataError naming the file and the line (so is a line that is not UTF-8)."""
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise DataError(path, f"expected UTF-8 text ({e.reason} at byte {e.start} of the line)",
                                line=line_no) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(path, f"not valid JSON ({e.msg})", line=line_no) from None
            if not isinstance(row, dict):
                raise DataError(path, f"expected a JSON object, got {type(row).__name__}", line=line_no)
            yield line_no, row


def read_superglue_jsonl(path, task, labelled=False):
    """SuperGLUE JSONL: one JSON object per line, fields as released (label absent on test).

    labelled=True: a record without a label (absent or null) is a DataError naming the line.
    """
    spec, out = TASKS[task], []
    for line_no, row in read_jsonl_records(path):
        try:
            out += _superglue_examples(task, row, lambda v, n=line_no: _label_id(path, n, spec, v, labelled))
        except KeyError as e:
            raise DataError(path, f"{spec.name} record without field {e}", line=line_no) from None
    return out


def _superglue_examples(task, row, label):
    lab = row.get("label")
    if task == "boolq":
        return [TextExample(row["passage"], row["question"], label(lab))]
    if task in ("cb", "rte"):
        return [TextExample(row["premise"], row["hypothesis"], label(lab))]
    if task == "wic":
        return [TextExample(f"{row['word']}: {row['sentence1']}", row["sentence2"], label(lab))]
    if task == "copa":
        connective = "because" if row["question"] == "cause" else "so"
        return [TextExample(f"{row['premise']} {connective} ...", f"{row['choice1']} or {row['choice2']}?",
                            label(lab))]
    if task == "multirc":
        out = []
        passage = row["passage"]["text"]
        for q in row["passage"]["questions"]:
            group = int(row["idx"]) * 100000 + int(q["idx"])
            for a in q["answers"]:
                out.append(TextExample(passage, f"{q['question']} {a['text']}", label(a.get("label")), group))
        return out
    raise KeyError(task)


def _csv_rows(path, **kwargs):
    """Rows of a UTF-8 CSV / TSV file (DataError naming the line of a byte that is not UTF-8)."""
    return csv.reader(io.StringIO(read_utf8(path, "utf-8-sig"), newline=""), **kwargs)


def read_glue_tsv(path, task, labelled=False):
    """GLUE TSV with a header row (CoLA: no header, columns source, label, original label, sentence).

    labelled=True: a file without the label column (or a CoLA line without a label) is a DataError.
    """
    spec, out = TASKS[task], []
    rows = list(_csv_rows(path, delimiter="\t", quoting=csv.QUOTE_NONE))
    if task == "cola":
        for line_no, row in enumerate(rows, 1):
            if len(row) == 2 and row[0] == "index":  # the test file has a header index, sentence
                continue
            if len(row) == 2:
                _label_id(path, line_no, spec, None, labelled)
                out.append(TextExample(row[1]))
            elif len(row) == 4:
                out.append(TextExample(row[3], None, _label_id(path, line_no, spec, row[1])))
            else:
                raise DataError(path, f"expected 4 tab-separated CoLA columns, got {len(row)}", line=line_no)
        return out
    if not rows:
        raise DataError(path, "empty file; expected a header row")
    header = rows[0]
    a_col, b_col, y_col = _GLUE_COLUMNS[task]
    if a_col not in header or (b_col and b_col not in header):
        raise DataError(path, f"header {header} lacks the {spec.name} columns {a_col!r}, {b_col!r}", line=1)
    ia, ib = header.index(a_col), header.index(b_col) if b_col else None
    iy = header.index(y_col) if y_col in header else None  # test files carry no label column
    if iy is None and labelled:
        raise DataError(path, f"header {header} lacks the label column {y_col!r}; only test splits may leave "
                        "labels out", line=1)
    for line_no, row in enumerate(rows[1:], 2):
        if len(row) < len(header):
            raise DataError(path, f"expected {len(header)} tab-separated columns, got {len(row)}", line=line_no)
        out.append(TextExample(row[ia], row[ib] if ib is not None else None,
                               _label_id(path, line_no, spec, row[iy]) if iy is not None else None))
    return out


def read_agnews_csv(path, task="agnews", labelled=True):
    """AG News CSV: no header; class index 1-4, title, description (backslashes stand for new lines).

    Every line carries its class (both released files are labelled); `labelled` is accepted for symmetry.
    """
    spec, out = TASKS[task], []
    reader = _csv_rows(path)
    for row in reader:
        line_no = reader.line_num
        if len(row) != 3:
            raise DataError(path, f"expected 3 comma-separated fields (class, title, description), "
                                  f"got {len(row)}", line=line_no)
        out.append(TextExample(row[1], row[2].replace("\\", " "), _label_id(path, line_no, spec, row[0])))
    return out


def read_imdb_csv(path, task="imdb", labelled=True):
    """IMDB CSV: header `review,sentiment`, sentiment positive / negative (every row labelled)."""
    spec, out = TASKS[task], []
    reader = _csv_rows(path)
    header = next(reader, None)
    if header != ["review", "sentiment"]:
        raise DataError(path, f"expected the header review,sentiment, got {header}", line=1)
    for row in reader:
        line_no = reader.line_num
        if len(row) != 2:
            raise DataError(path, f"expected 2 fields, got {len(row)}", line=line_no)
        out.append(TextExample(row[0].replace("<br />", " "), None, _label_id(path, line_no, spec, row[1])))
    return out


# -- generated task ------------------------------------------------------------------------------------------

TOPIC_WORDS = (("goal", "match", "coach", "league", "striker"), ("market", "shares", "profit", "bank", "stock"),
               ("planet", "rocket", "orbit", "laser", "genome"), ("election", "senate", "minister", "vote", "treaty"))
FILLER_WORDS = ("the", "a", "of", "on", "new", "after", "report", "says", "today", "week", "big", "city", "team",
                "people", "year", "plan", "news", "first", "over", "more", "talks", "set", "back", "high", "time")


def write_synthetic_agnews(folder, num_train=800, num_test=200, seed=0, length=(6, 14), signal_words=2):
    """A small learnable 4-class topic task in the AG News CSV format (train.csv, test.csv).

    Each text is filler words plus `signal_words` words of its class's topic list, placed at random positions
    among the first few tokens of the title (so a model that reads the first n tokens, as IPT does, sees them).
    Returns the folder.
    """
    rng = random.Random(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", num_train), ("test", num_test)):
        with open(folder / f"{split}.csv", "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, quoting=csv.QUOTE_ALL)
            for _ in range(n):
                y = rng.randrange(4)
                title = [rng.choice(FILLER_WORDS) for _ in range(rng.randint(*length) // 2)]
                for _ in range(signal_words):
                    title.insert(rng.randrange(min(len(title), 4) + 1), rng.choice(TOPIC_WORDS[y]))
                desc = [rng.choice(FILLER_WORDS) for _ in range(rng.randint(*length))]
                w.writerow([str(y + 1), " ".join(title), " ".join(desc)])
    return folder


def synthetic_vocab():
    """A WordPiece vocabulary covering the generated task (for a tiny randomly initialised encoder)."""
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted({w for topic in TOPIC_WORDS for w in topic} | set(FILLER_WORDS))
    return special + words + [".", "?", ":", ",", "yes", "no"]
