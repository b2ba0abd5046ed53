"""Bad-input suite for OFA's task TSV reader (`ofa_prompt.data.read_tsv` / `decode_image`): VQA, RefCOCO and
SNLI-VE files in the official column layout.

Each case writes a valid file (the generators of `ofa_prompt.data`, or a two-row SNLI-VE file written here),
corrupts one thing, and reads it through the reader, which must stop with a `DataError` naming the file and the
line. Part of the table-driven bad-input suites (`tests/test_bad_input_<format>.py`).
"""
import pytest
from ofa_prompt.data import decode_image, read_tsv, write_synthetic_refcoco, write_synthetic_vqa

from common.errors import DataError

SNLI = "0\tx\tIMG\ta dog runs\ta dog\tentailment\n1\tx\tIMG\ta cat\ta cat\tcontradiction\n"


def write_valid(folder, task):
    if task == "vqa":
        return write_synthetic_vqa(folder, num_pretrain=1, num_train=3, num_val=1, num_test=1) / "train.tsv"
    if task == "refcoco":
        return write_synthetic_refcoco(folder / "refcoco.tsv", num=3)
    path = folder / "snli.tsv"
    path.write_text(SNLI)
    return path


def column(line, col, value):
    """Set tab-separated column `col` of line `line` (1-based) to `value`."""
    def corrupt(path):
        rows = path.read_bytes().split(b"\n")
        parts = rows[line - 1].split(b"\t")
        parts[col] = value if isinstance(value, bytes) else value.encode()
        rows[line - 1] = b"\t".join(parts)
        path.write_bytes(b"\n".join(rows))
    return corrupt


def truncate_row(line, keep):
    def corrupt(path):
        rows = path.read_text().split("\n")
        rows[line - 1] = "\t".join(rows[line - 1].split("\t")[:keep])
        path.write_text("\n".join(rows))
    return corrupt


def empty(path):
    path.write_text("")


# (task, corruption, line named in the error or None, message fragment)
CASES = {
    "vqa_too_few_columns": ("vqa", truncate_row(1, 3), 1, "tab-separated columns"),
    "vqa_answer_without_score": ("vqa", column(2, 3, "red"), 2, "score|!+answer"),
    "vqa_score_above_one": ("vqa", column(2, 3, "3.0|!+red"), 2, "scores in [0, 1]"),
    "vqa_nan_score": ("vqa", column(1, 3, "nan|!+red"), 1, "scores in [0, 1]"),
    "vqa_not_utf8": ("vqa", column(2, 2, b"what \xff is it?"), None, "UTF-8"),
    "vqa_empty_file": ("vqa", empty, None, "empty file"),
    "refcoco_box_not_numbers": ("refcoco", column(2, 3, "a,b,c,d"), 2, "x0,y0,x1,y1"),
    "refcoco_box_inverted": ("refcoco", column(2, 3, "10,10,5,20"), 2, "x0 < x1"),
    "refcoco_box_negative": ("refcoco", column(3, 3, "-1,0,5,5"), 3, "0 <= x0"),
    "refcoco_box_three_values": ("refcoco", column(1, 3, "1,2,3"), 1, "x0,y0,x1,y1"),
    "refcoco_box_nan": ("refcoco", column(1, 3, "nan,0,5,5"), 1, "0 <= x0"),
    "snli_unknown_label": ("snli_ve", column(2, 5, "yes"), 2, "label in"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_ofa_tsv_is_a_data_error_naming_file_and_line(tmp_path, case):
    task, corrupt, line, fragment = CASES[case]
    path = write_valid(tmp_path, task)
    corrupt(path)
    with pytest.raises(DataError) as err:
        read_tsv(path, task)
    message = str(err.value)
    assert path.name in message and fragment in message, message
    if line is not None:
        assert f"{path.name}:{line}:" in message, message


@pytest.mark.parametrize("payload", [b"bm90IGFuIGltYWdl", b"!!!", b""])
def test_bad_image_is_a_data_error_naming_file_and_line(tmp_path, payload):
    path = write_valid(tmp_path, "vqa")
    column(2, 5, payload)(path)
    rows = read_tsv(path, "vqa")
    with pytest.raises(DataError, match=r"train.tsv:2:"):
        decode_image(rows[1])
