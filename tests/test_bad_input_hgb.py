"""Bad-input suite for the HGB reader (`common.data.hgb.load_hgb`).

Each case takes a freshly generated, valid HGB folder (`write_synthetic_hgb`), corrupts one thing, and reads it
back through the real reader, which must stop with a `DataError` naming the file (and line where the format has
lines). Part of the table-driven bad-input suites (`tests/test_bad_input_<format>.py`): a new reader must join
them with a table of its own (at least 8 cases), and a new check in a reader adds a row here.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from common.data.hgb import load_hgb, write_synthetic_hgb
from common.errors import DataError


@pytest.fixture(scope="module")
def valid_dir(tmp_path_factory):
    return write_synthetic_hgb(tmp_path_factory.mktemp("hgb_valid") / "SYN", num_nodes_per_type=(40, 30, 8, 20),
                               feature_dims=(8, 4, 2, 0), seed=0)


def lines(folder, name):
    return (folder / name).read_text().splitlines()


def set_lines(folder, name, rows):
    (folder / name).write_text("".join(r + "\n" for r in rows))


def set_field(folder, name, line, field, value):
    rows = lines(folder, name)
    parts = rows[line - 1].split("\t")
    parts[field] = value
    rows[line - 1] = "\t".join(parts)
    set_lines(folder, name, rows)


def relabel_first(name, value):
    return lambda d: set_field(d, name, 1, 3, value)


def drop_info(d):
    (d / "info.dat").unlink()
    set_field(d, "label.dat", 1, 3, "99")


def leak_test_node(d):
    set_lines(d, "label.dat", lines(d, "label.dat") + [lines(d, "label.dat.test")[4]])


def link_of_type(d, rel):
    """1-based line of the first link.dat line of relation `rel`."""
    return next(i for i, r in enumerate(lines(d, "link.dat"), 1) if r.split("\t")[2] == str(rel))


def wrong_link_type(d):
    set_field(d, "link.dat", link_of_type(d, 1) + 1, 2, "0")   # a paper-author link typed paper-paper


def wrong_info_ends(d):
    info = json.loads((d / "info.dat").read_text())
    info["link.dat"]["link type"]["1"].update(start=1, end=0)
    (d / "info.dat").write_text(json.dumps(info))


def non_utf8_node_name(d):
    data = (d / "node.dat").read_bytes().split(b"\n")
    data[2] = data[2].replace(b"\t", b"\t\xff\xfe", 1)
    (d / "node.dat").write_bytes(b"\n".join(data))


def empty(name):
    return lambda d: (d / name).write_text("")


def remove(name):
    return lambda d: (d / name).unlink()


def label_non_target(d):
    set_lines(d, "label.dat", lines(d, "label.dat") + ["45\t\t1\t0"])   # node 45 is an author


def duplicate_label_line(d):
    set_lines(d, "label.dat", lines(d, "label.dat") + [lines(d, "label.dat")[0]])


def short_feature_row(d):
    set_field(d, "node.dat", 2, 3, "0.1,0.2")


# (case, corrupt(folder), file named in the error, line or None, message fragment)
CASES = [
    ("label_outside_info_classes", relabel_first("label.dat", "99"), "label.dat", 1, "outside the 3 classes"),
    ("test_label_outside_info_classes", relabel_first("label.dat.test", "3"), "label.dat.test", 1,
     "outside the 3 classes"),
    ("stray_label_without_info", drop_info, "label.dat", 1, "class 3 has no labelled node"),
    ("negative_label", relabel_first("label.dat", "-1"), "label.dat", 1, "non-negative labels"),
    ("non_integer_label", relabel_first("label.dat", "x"), "label.dat", 1, "integer labels"),
    ("empty_test_labels", empty("label.dat.test"), "label.dat.test", None, "found an empty file"),
    ("empty_train_labels", empty("label.dat"), "label.dat", None, "found an empty file"),
    ("empty_links", empty("link.dat"), "link.dat", None, "found an empty file"),
    ("node_in_train_and_test", leak_test_node, "label.dat.test", 5, "is labelled here and in label.dat"),
    ("link_type_contradicts_endpoints", wrong_link_type, "link.dat", None, "but type 0 joins (0, 0)"),
    ("info_link_ends_contradict_links", wrong_info_ends, "link.dat", None, "info.dat says (1, 0)"),
    ("non_utf8_node_name", non_utf8_node_name, "node.dat", 3, "expected UTF-8 text"),
    ("nan_feature", lambda d: set_field(d, "node.dat", 3, 3, ",".join(["nan"] * 8)), "node.dat", 3,
     "expected finite features"),
    ("text_feature", lambda d: set_field(d, "node.dat", 3, 3, ",".join(["a"] * 8)), "node.dat", 3,
     "comma-separated float features"),
    ("feature_width_differs", short_feature_row, "node.dat", 2, "expected 8 features"),
    ("link_endpoint_out_of_range", lambda d: set_field(d, "link.dat", 2, 1, "5000"), "link.dat", 2,
     "expected node ids in 0..97"),
    ("non_integer_link_type", lambda d: set_field(d, "link.dat", 4, 2, "r"), "link.dat", 4, "integer src_id"),
    ("link_missing_field", lambda d: set_lines(d, "link.dat", ["0\t1\t0"] + lines(d, "link.dat")), "link.dat",
     1, "expected 4 tab-separated fields"),
    ("label_on_non_target_node", label_non_target, "label.dat", None, "target type 0"),
    ("label_node_twice", duplicate_label_line, "label.dat", None, "expected each node once"),
    ("label_wrong_node_type", lambda d: set_field(d, "label.dat", 2, 2, "1"), "label.dat", 2,
     "expected node_type 0"),
    ("node_id_missing", lambda d: set_lines(d, "node.dat", lines(d, "node.dat")[1:]), "node.dat", None,
     "id 0 is missing"),
    ("node_dat_missing", remove("node.dat"), "node.dat", None, "expected the HGB file node.dat"),
]


def test_valid_data_reads(valid_dir):
    d = load_hgb(valid_dir)
    assert d.num_classes == 3 and len(d.train_val_nodes) == 12 and len(d.test_nodes) == 28


@pytest.mark.parametrize("corrupt, filename, line, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_data_error_naming_the_file(valid_dir, tmp_path, corrupt, filename, line, fragment):
    folder = shutil.copytree(valid_dir, tmp_path / "SYN")
    corrupt(folder)
    with pytest.raises(DataError) as e:
        load_hgb(folder)
    assert e.value.path == str(folder / filename), str(e.value)
    assert fragment in str(e.value)
    if line is not None:
        assert e.value.line == line, str(e.value)


def run_train(method_dir, cwd, *args):
    """The method's real train.sh in a subprocess (one thread) -> CompletedProcess."""
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(repo / method_dir / "train.sh"), "--config", "configs/smoke.yaml", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_simple_hgn_train_stops_on_a_stray_label_before_training(valid_dir, tmp_path):
    """Issue 12: one stray `99` in label.dat made a 100-class model that trained with exit 0."""
    shutil.copytree(valid_dir, tmp_path / "data" / "SYN")
    set_field(tmp_path / "data" / "SYN", "label.dat", 1, 3, "99")
    out = run_train("hgb_benchmark/simple_hgn", tmp_path, "--dataset", "SYN", "--data_root", "data",
                    "--out_dir", "run", "--epochs", "1")
    assert out.returncode == 2, out.stderr[-2000:]
    assert "error: data/SYN/label.dat:1: label 99 is outside the 3 classes" in out.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()
