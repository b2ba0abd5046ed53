"""common/data/hgb.py: the HGB file format, the official graph build and splits, and the synthetic generator.

The generator writes the real file format and `load_hgb` (the reader users run) reads it back.
"""
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from common.data import hgb
from common.data.hgb import (
    FEATURE_MODES,
    HGBData,
    OneHot,
    build_features,
    build_homogeneous_graph,
    input_dims,
    load_hgb,
    sample_random_negatives,
    split_lp_train_valid,
    split_train_val,
    write_lp_submission,
    write_nc_submission,
    write_synthetic_hgb,
)
from common.errors import DataError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def nc_dir(tmp_path_factory):
    return write_synthetic_hgb(tmp_path_factory.mktemp("nc") / "SYN", seed=0)


@pytest.fixture(scope="module")
def nc(nc_dir):
    return load_hgb(nc_dir)


@pytest.fixture(scope="module")
def lp(tmp_path_factory):
    return load_hgb(write_synthetic_hgb(tmp_path_factory.mktemp("lp") / "SYNLP", seed=0, task="lp"))


def write_dataset(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8", newline="")
    return folder


# types 0 (2 nodes, 2 features), 1 (2 nodes, none), 2 (1 node, 1 feature); an empty name on lines 2 and 5
TINY = {
    "node.dat": "0\tp0\t0\t1.0,2.0\n1\t\t0\t3.0,4.0\n2\ta\t1\n3\tb b\t1\n4\t\t2\t0.5\n",
    "link.dat": "0\t2\t0\t1.0\n2\t0\t1\t1.0\n1\t3\t0\t1.0\n0\t4\t2\t1.0\n",
    "label.dat": "1\t\t0\t1\n",
    "label.dat.test": "0\t\t0\t0\n",
}


# ------------------------------------------------------------------------------------------ reading

def test_load_hand_written_dataset(tmp_path):
    d = load_hgb(write_dataset(tmp_path / "TINY", TINY))
    assert isinstance(d, HGBData) and d.name == "TINY" and d.num_nodes == 5 and d.num_node_types == 3
    assert d.node_type.tolist() == [0, 0, 1, 1, 2] and d.type_offsets.tolist() == [0, 2, 4, 5]
    assert d.type_range(1) == (2, 4)
    np.testing.assert_array_equal(d.features[0], [[1, 2], [3, 4]])
    assert d.features[0].dtype == np.float32 and d.features[1] is None
    np.testing.assert_array_equal(d.features[2], [[0.5]])
    assert d.edge_src.tolist() == [0, 2, 1, 0] and d.edge_dst.tolist() == [2, 0, 3, 4]
    assert d.edge_type.tolist() == [0, 1, 0, 2] and d.edge_weight.tolist() == [1, 1, 1, 1]
    assert d.num_edge_types == 3 and d.link_meta.tolist() == [[0, 1], [1, 0], [0, 2]]
    assert d.labels.tolist() == [-1, 1, -1, -1, -1] and d.train_val_nodes.tolist() == [1]
    assert d.test_nodes.tolist() == [0] and d.test_labels.tolist() == [0] and d.num_classes == 2
    assert d.target_type == 0 and not d.multi_label and d.test_links is None
    assert d.node_type_names == ["type0", "type1", "type2"] and d.edge_type_names == ["0-1", "1-0", "0-2"]
    assert load_hgb(tmp_path, "TINY").num_nodes == 5                     # root + dataset name
    assert "TINY" in repr(d)
    with pytest.raises(DataError, match="link.dat: expected one link per line, found an empty file"):
        load_hgb(write_dataset(tmp_path / "EMPTY", {**TINY, "link.dat": ""}))   # a graph without links: refused


def test_round_trip_synthetic(nc, nc_dir):
    assert nc.num_nodes == 940 and np.diff(nc.type_offsets).tolist() == [400, 300, 40, 200]
    assert [None if f is None else f.shape for f in nc.features] == [(400, 32), (300, 16), (40, 8), None]
    link_lines = (nc_dir / "link.dat").read_text().count("\n")
    assert len(nc.edge_src) == link_lines and nc.num_edge_types == 7
    assert nc.link_meta.tolist() == [[0, 0], [0, 1], [1, 0], [0, 2], [2, 0], [0, 3], [3, 0]]
    # relation 2 (author-paper) is exactly the reverse of relation 1 (paper-author)
    fwd = {(s, t) for s, t, r in zip(nc.edge_src, nc.edge_dst, nc.edge_type, strict=True) if r == 1}
    rev = {(t, s) for s, t, r in zip(nc.edge_src, nc.edge_dst, nc.edge_type, strict=True) if r == 2}
    assert fwd == rev
    assert nc.node_type_names == ["paper", "author", "subject", "term"]
    assert nc.edge_type_names[1] == "paper-author" and nc.class_names == ["class0", "class1", "class2"]
    assert nc.target_type == 0 and nc.num_classes == 3 and not nc.multi_label
    assert len(nc.train_val_nodes) == 120 and len(nc.test_nodes) == 280             # 30% / 70%
    assert np.array_equal(np.union1d(nc.train_val_nodes, nc.test_nodes), np.arange(400))
    assert (np.diff(nc.test_nodes) > 0).all() and (np.diff(nc.train_val_nodes) > 0).all()
    assert (nc.labels[nc.train_val_nodes] >= 0).all() and (np.delete(nc.labels, nc.train_val_nodes) == -1).all()
    assert nc.test_label_file == "label.dat.test" and set(nc.test_labels.tolist()) == {0, 1, 2}
    assert "\t\t" in (nc_dir / "node.dat").read_text().split("\n")[0]                 # empty names written


def test_multi_label_and_featureless_types(tmp_path):
    d = load_hgb(write_synthetic_hgb(tmp_path / "ML", multi_label=True, feature_dims=(8, 0, 4, 0), seed=1))
    assert d.multi_label and d.labels.shape == (d.num_nodes, 3) and d.labels.dtype == np.float32
    assert d.test_labels.shape == (len(d.test_nodes), 3)
    assert (d.labels[d.train_val_nodes].sum(1) > 1).any() and (d.labels[d.train_val_nodes].sum(1) >= 1).all()
    assert d.labels[400:].sum() == 0
    assert d.features[1] is None and d.features[3] is None and d.features[2].shape == (40, 4)


def test_crlf_labels_and_test_full_preferred(nc_dir, nc, tmp_path):
    folder = Path(shutil.copytree(nc_dir, tmp_path / "copy"))
    test_text = (folder / "label.dat.test").read_text()
    (folder / "label.dat.test").write_bytes(test_text.replace("\n", "\r\n").encode())
    d = load_hgb(folder)
    np.testing.assert_array_equal(d.test_nodes, nc.test_nodes)
    np.testing.assert_array_equal(d.test_labels, nc.test_labels)
    # label.dat.test_full wins over label.dat.test
    (folder / "label.dat.test_full").write_text("".join(test_text.splitlines(keepends=True)[:10]))
    d = load_hgb(folder)
    assert d.test_label_file == "label.dat.test_full" and len(d.test_nodes) == 10


def test_info_dat_best_effort_and_meta_ignored(tmp_path):
    files = dict(TINY)
    files["info.dat"] = ("TYPE\tMEANING\n0\t\tBOOK\n1\t\tFILM\n2\t\tMUSIC\n\n"
                         "LINK\tSTART\tEND\tMEANING\n0\t\t0\t1\tBOOK-and-FILM\n\n"
                         "LABEL\tMEANING\n0\t\tfiction\n1\t\tscience\n")
    files["meta.dat"] = '{"Node Type_3": ,}'                             # IMDB-style malformed JSON
    d = load_hgb(write_dataset(tmp_path / "FB", files))
    assert d.node_type_names == ["BOOK", "FILM", "MUSIC"]
    assert d.edge_type_names[0] == "BOOK-and-FILM" and d.class_names == ["fiction", "science"]
    files["info.dat"] = "{ not json"
    d = load_hgb(write_dataset(tmp_path / "BAD", files))
    assert d.node_type_names == ["type0", "type1", "type2"] and d.class_names == []


# ------------------------------------------------------------------------------------------ errors

def test_missing_folder_and_files(tmp_path):
    with pytest.raises(DataError) as e:
        load_hgb(tmp_path / "ACM")
    assert str(tmp_path / "ACM") in str(e.value) and "Google Drive" in str(e.value)
    write_dataset(tmp_path / "NOLINK", {"node.dat": TINY["node.dat"]})
    with pytest.raises(DataError, match="link.dat"):
        load_hgb(tmp_path / "NOLINK")
    write_dataset(tmp_path / "OUTER" / "ACM", TINY)                       # unzipped one level too deep
    with pytest.raises(DataError, match="pass that folder"):
        load_hgb(tmp_path / "OUTER")


BAD_FILES = [
    ("node.dat", "0\tp0\t0\t1.0,2.0\n1\t0\n", 2, "3 or 4 tab-separated"),
    ("node.dat", "0\tp0\t0\t1.0,2.0\nx\t\t0\t3.0,4.0\n", 2, "integer node_id"),
    ("node.dat", "0\tp0\t0\t1.0,2.0\n1\t\t0\t3.0,oops\n", 2, "float features"),
    ("node.dat", "0\tp0\t0\t1.0,2.0\n1\t\t0\n", 2, "expected features"),
    ("node.dat", "0\tp0\t0\t1.0,2.0\n1\t\t0\t3.0\n", 2, "expected 2 features"),
    ("node.dat", "0\ta\t0\n1\tb\t1\n2\tc\t0\n", 3, "contiguous id range"),
    ("node.dat", "0\ta\t0\n0\tb\t0\n", 2, "each node id once"),
    ("node.dat", "0\ta\t0\n2\tb\t0\n", 2, "id 1 is missing"),
    ("link.dat", "0\t2\t0\t1.0\n2\t0\t1\n", 2, "4 tab-separated"),
    ("link.dat", "0\t2\t0\t1.0\n2\t0.5\t1\t1.0\n", 2, "integer src_id"),
    ("link.dat", "0\t2\t0\t1.0\n2\t9\t1\t1.0\n", 2, "node ids in 0..4"),
    ("label.dat", "1\t\t0\ta\n", 1, "integer labels"),
    ("label.dat", "1\t0\t1\n", 1, "4 tab-separated"),
    ("label.dat", "1\t\t0\t0\n2\t\t1\t0\n", 2, "target type 0"),
    ("label.dat", "1\t\t1\t0\n", 1, "expected node_type 0"),
    ("label.dat", "1\t\t0\t0\n1\t\t0\t1\n", 2, "each node once"),
]


@pytest.mark.parametrize(("name", "text", "line", "match"), BAD_FILES)
def test_malformed_line_names_file_and_line(tmp_path, name, text, line, match):
    files = dict(TINY)
    files[name] = text
    if name == "node.dat":
        files["link.dat"] = files["label.dat"] = files["label.dat.test"] = ""
    with pytest.raises(DataError, match=match) as e:
        load_hgb(write_dataset(tmp_path / "BAD", files))
    assert e.value.path.endswith(name) and e.value.line == line
    assert f"{name}:{line}" in str(e.value)


# ------------------------------------------------------------------------------------------ graph build

def official_graph(num_nodes, links, num_rel, symmetric):
    """Slow copy of the official run_new.py / run_multi.py edge typing (dict loops over all edges)."""
    by_rel = {}                                             # relation -> pairs, first-appearance order
    for u, v, r in links:
        by_rel.setdefault(r, set()).add((u, v))
    edge2type = {}
    for k, pairs in by_rel.items():
        for u, v in sorted(pairs):
            edge2type[(u, v)] = k
    for i in range(num_nodes):
        if (i, i) not in edge2type:
            edge2type[(i, i)] = num_rel
    if symmetric:
        for k, pairs in by_rel.items():
            for u, v in sorted(pairs):
                if (v, u) not in edge2type:
                    edge2type[(v, u)] = k + 1 + num_rel
    edges = {p for pairs in by_rel.values() for p in pairs}
    if symmetric:
        edges |= {(v, u) for u, v in edges}
    edges = {(u, v) for u, v in edges if u != v} | {(i, i) for i in range(num_nodes)}
    return sorted((v, u, edge2type[(u, v)]) for u, v in edges)   # sorted by (dst, src)


def graph_of(data, **kw):
    src, dst, etype, num_etypes = build_homogeneous_graph(data, **kw)
    assert src.dtype == dst.dtype == etype.dtype == torch.int64
    return list(zip(dst.tolist(), src.tolist(), etype.tolist(), strict=True)), num_etypes


def test_graph_types_match_official_loop_on_hand_graph(tmp_path):
    nodes = "".join(f"{i}\t\t0\n" for i in range(6))
    links = [(0, 1, 2), (0, 1, 0), (1, 0, 1), (2, 2, 0), (3, 4, 1), (3, 4, 1), (4, 5, 0), (4, 5, 1)]
    text = "".join(f"{u}\t{v}\t{r}\t1.0\n" for u, v, r in links)
    d = load_hgb(write_dataset(tmp_path / "G", {"node.dat": nodes, "link.dat": text}))
    got, num_etypes = graph_of(d)
    assert num_etypes == 7 and got == official_graph(6, links, 3, True)
    as_dict = {(u, v): t for v, u, t in got}
    # relations appear in the order 2, 0, 1: (0,1) is in 2 and 0 -> 0 wins (last); self-loop link (2,2) keeps 0;
    # (1,0) is its own link; (4,3) reverse-only of relation 1 -> 1+1+3; (5,4) from relations 0 and 1 -> 0+1+3
    assert as_dict[(0, 1)] == 0 and as_dict[(2, 2)] == 0 and as_dict[(1, 1)] == 3 and as_dict[(1, 0)] == 1
    assert as_dict[(4, 3)] == 5 and as_dict[(5, 4)] == 4 and len(got) == 6 + 4 + 2
    got, num_etypes = graph_of(d, symmetric=False)
    assert num_etypes == 4 and got == official_graph(6, links, 3, False)


def test_graph_types_match_official_loop_on_random_graph(nc):
    rng = np.random.default_rng(0)
    links = np.stack([rng.integers(0, 40, 300), rng.integers(0, 40, 300), rng.integers(0, 4, 300)], axis=1)
    expect = official_graph(nc.num_nodes, [tuple(x) for x in links.tolist()], nc.num_edge_types, True)
    got, num_etypes = graph_of(nc, links=links)
    assert got == expect and num_etypes == 2 * nc.num_edge_types + 1
    got, _ = graph_of(nc)                                   # the synthetic link.dat itself, sorted by (dst, src)
    links = list(zip(nc.edge_src.tolist(), nc.edge_dst.tolist(), nc.edge_type.tolist(), strict=True))
    assert got == official_graph(nc.num_nodes, links, nc.num_edge_types, True)


# ------------------------------------------------------------------------------------------ NC inputs and split

def test_feature_modes(nc):
    assert FEATURE_MODES[3] == "one_hot"
    kinds = {mode: [("x", f.shape[1]) if isinstance(f, torch.Tensor) else ("1h", f.num_nodes)
                    for f in build_features(nc, mode)] for mode in FEATURE_MODES}
    assert kinds["all"] == [("x", 32), ("x", 16), ("x", 8), ("1h", 200)]
    assert kinds["target_only_zeros"] == [("x", 32), ("x", 10), ("x", 10), ("x", 10)]
    assert kinds["target_only_one_hot"] == [("x", 32), ("1h", 300), ("1h", 40), ("1h", 200)]
    assert kinds["one_hot"] == [("1h", 400), ("1h", 300), ("1h", 40), ("1h", 200)]
    assert kinds["type2_one_hot"] == [("1h", 400), ("1h", 300), ("x", 8), ("1h", 200)]
    assert kinds["type2_zeros"] == [("x", 10), ("x", 10), ("x", 8), ("x", 10)]
    feats = build_features(nc, "target_only_zeros")
    assert torch.equal(feats[0], torch.from_numpy(nc.features[0])) and feats[1].abs().sum() == 0
    assert build_features(nc)[3] == OneHot(200)
    assert input_dims(build_features(nc, "target_only_one_hot")) == [32, 300, 40, 200]
    with pytest.raises(ValueError, match="type2_zeros"):
        build_features(nc, "3")


def test_split_train_val_is_seeded_and_partitions(nc):
    train, val = split_train_val(nc.train_val_nodes, 0.2, seed=3)
    assert len(val) == int(120 * 0.2) and len(train) == 120 - len(val)
    assert np.array_equal(np.union1d(train, val), nc.train_val_nodes) and not np.intersect1d(train, val).size
    assert (np.diff(train) > 0).all() and (np.diff(val) > 0).all()
    again = split_train_val(nc.train_val_nodes, 0.2, seed=3)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)
    assert not np.array_equal(split_train_val(nc.train_val_nodes, 0.2, seed=4)[1], val)


# ------------------------------------------------------------------------------------------ generator

def test_generator_is_deterministic_and_controls_only_touch_labels(tmp_path):
    def files(**kw):
        folder = write_synthetic_hgb(tmp_path / str(len(list(tmp_path.iterdir()))), **kw)
        return {p.name: p.read_bytes() for p in folder.iterdir()}

    base = files(seed=5)
    assert files(seed=5) == base and files(seed=6)["link.dat"] != base["link.dat"]
    for control in ({"shuffle_labels": True}, {"label_noise": 0.5}):
        other = files(seed=5, **control)
        assert other["node.dat"] == base["node.dat"] and other["link.dat"] == base["link.dat"]
        assert other["label.dat"] != base["label.dat"]
        for name in ("label.dat", "label.dat.test"):        # same split, same file order
            nodes = [[line.split(b"\t")[0] for line in f[name].splitlines()] for f in (base, other)]
            assert nodes[0] == nodes[1]


def neighbour_vote_accuracy(data):
    """Predict a test paper's class by the train labels of the papers two hops away (a planted-signal probe)."""
    src, dst, _, _ = build_homogeneous_graph(data)
    a = sp.csr_matrix((np.ones(len(src)), (dst.numpy(), src.numpy())), shape=(data.num_nodes,) * 2)
    y = np.zeros((data.num_nodes, data.num_classes))
    y[data.train_val_nodes, data.labels[data.train_val_nodes]] = 1
    votes = a @ (a @ y)
    return (votes[data.test_nodes].argmax(1) == data.test_labels).mean()


def nearest_mean_accuracy(data):
    x, tv = data.features[0], data.train_val_nodes
    means = np.stack([x[tv][data.labels[tv] == k].mean(0) for k in range(data.num_classes)])
    pred = ((x[data.test_nodes, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    return (pred == data.test_labels).mean()


def test_planted_signal_is_learnable_and_shuffled_control_is_not(nc, tmp_path):
    graph_acc, feat_acc = neighbour_vote_accuracy(nc), nearest_mean_accuracy(nc)
    assert graph_acc > 0.8 and 0.4 < feat_acc < graph_acc               # features: weak on their own
    shuffled = load_hgb(write_synthetic_hgb(tmp_path / "SHUF", seed=0, shuffle_labels=True))
    assert neighbour_vote_accuracy(shuffled) < 0.45                     # chance is 1/3


# ------------------------------------------------------------------------------------------ link prediction

def test_lp_dataset_holds_out_test_links(lp):
    assert lp.num_classes == 0 and lp.labels is None and len(lp.test_nodes) == 0
    assert set(lp.test_links[:, 2].tolist()) == {1}
    train = set(zip(lp.edge_src.tolist(), lp.edge_dst.tolist(), lp.edge_type.tolist(), strict=True))
    for h, t, _ in lp.test_links.tolist():
        assert (h, t, 1) not in train and (t, h, 2) not in train        # nor its reverse copy


def test_lp_generator_with_two_test_relations(tmp_path):
    d = load_hgb(write_synthetic_hgb(tmp_path / "LP2", task="lp", lp_relations=(1, 3), seed=2))
    assert set(d.test_links[:, 2].tolist()) == {1, 3} and d.link_meta[3].tolist() == [0, 2]
    assert set(hgb.test_negatives_random(d, 3)[1].tolist()) <= set(range(700, 740))   # subject ids


def test_split_lp_train_valid(lp):
    train, valid = split_lp_train_valid(lp, valid_fraction=0.1, seed=0)
    all_links = {tuple(x) for x in np.stack([lp.edge_src, lp.edge_dst, lp.edge_type], 1).tolist()}
    tr, va = {tuple(x) for x in train.tolist()}, {tuple(x) for x in valid.tolist()}
    assert tr | va == all_links and not tr & va and len(tr) + len(va) == len(all_links)
    for h, t, r in va:                                      # the first (smallest) tail of each head stays in train
        assert min(tt for hh, tt, rr in all_links if hh == h and rr == r) < t
        assert (h, min(tt for hh, tt, rr in all_links if hh == h and rr == r), r) in tr
    eligible = len(all_links) - len({(h, r) for h, _, r in all_links})
    assert 0.05 < len(va) / eligible < 0.15
    again = split_lp_train_valid(lp, valid_fraction=0.1, seed=0)
    assert np.array_equal(again[1], valid) and not np.array_equal(split_lp_train_valid(lp, seed=1)[1], valid)
    src, _, _, _ = build_homogeneous_graph(lp, links=train)             # the message-passing graph of LP
    assert len(src) < len(build_homogeneous_graph(lp)[0])


def test_sample_random_negatives_in_tail_range():
    heads = np.arange(1000)
    tails = sample_random_negatives(heads, (400, 700), np.random.default_rng(0))
    assert tails.dtype == np.int64 and tails.min() >= 400 and tails.max() < 700 and len(np.unique(tails)) > 200
    assert np.array_equal(tails, sample_random_negatives(heads, (400, 700), np.random.default_rng(0)))


def neighbour_sets(data):
    links = np.concatenate([np.stack([data.edge_src, data.edge_dst], 1), data.test_links[:, :2]])
    nbrs = {}
    for u, v in links.tolist():
        nbrs.setdefault(u, set()).add(v)
        nbrs.setdefault(v, set()).add(u)
    return nbrs


def check_test_set(data, heads, tails, labels, relation):
    lo, hi = data.type_range(int(data.link_meta[relation, 1]))
    pos = {(h, t) for h, t, r in data.test_links.tolist() if r == relation}
    assert {(h, t) for h, t, y in zip(heads, tails, labels, strict=True) if y == 1} <= pos
    assert (np.diff(heads) >= 0).all()                      # grouped by head
    for h in np.unique(heads):                              # k positives, k negatives per head
        assert labels[heads == h].sum() * 2 == (heads == h).sum()
    neg = labels == 0
    assert tails[neg].min() >= lo and tails[neg].max() < hi
    nbrs = neighbour_sets(data)
    assert all(t not in nbrs.get(h, ()) for h, t in zip(heads[neg], tails[neg], strict=True))
    return nbrs


def test_two_hop_test_negatives(lp):
    heads, tails, labels = hgb.test_negatives_two_hop(lp, 1, seed=1)
    nbrs = check_test_set(lp, heads, tails, labels, 1)
    for h, t in zip(heads[labels == 0], tails[labels == 0], strict=True):
        assert t != h and any(t in nbrs[m] for m in nbrs[h])          # reachable in exactly two steps
    dropped = {h for h, _, r in lp.test_links.tolist() if r == 1} - set(heads.tolist())
    assert len(dropped) < 0.1 * len(set(heads.tolist()))    # heads without 2-hop candidates are rare here
    again = hgb.test_negatives_two_hop(lp, 1, seed=1)
    assert np.array_equal(again[1], tails)


def test_random_test_negatives(lp):
    heads, tails, labels = hgb.test_negatives_random(lp, 1, seed=1)
    check_test_set(lp, heads, tails, labels, 1)
    assert labels.sum() == len({(h, t) for h, t, r in lp.test_links.tolist() if r == 1})
    with pytest.raises(ValueError, match="no links"):
        hgb.test_negatives_random(lp, 0)


# ------------------------------------------------------------------------------------------ submissions

def test_submission_files(tmp_path):
    write_nc_submission(tmp_path / "ACM_1.txt", [3, 5], 0, np.array([2, 0]), multi_label=False)
    assert (tmp_path / "ACM_1.txt").read_text() == "3\t\t0\t2\n5\t\t0\t0\n"
    write_nc_submission(tmp_path / "IMDB_1.txt", [7, 8], [0, 0], np.array([[1, 0, 1], [0, 0, 0]]), multi_label=True)
    assert (tmp_path / "IMDB_1.txt").read_text() == "7\t\t0\t0,2\n8\t\t0\t\n"
    write_lp_submission(tmp_path / "LastFM_1.txt", [1, 1], [9, 4], 2, np.array([0.75, 0.125]))
    assert (tmp_path / "LastFM_1.txt").read_text() == "1\t9\t2\t0.75\n1\t4\t2\t0.125\n"


# ------------------------------------------------------------------------------------------ real data

@pytest.fixture(scope="module")
def acm_dir(tmp_path_factory, real_data):
    archive = real_data("hgb/ACM.zip")
    folder = tmp_path_factory.mktemp("real") / "ACM"
    with zipfile.ZipFile(archive) as z:
        z.extractall(folder)
    return folder


@pytest.mark.realdata
def test_real_acm(acm_dir):
    d = load_hgb(acm_dir)
    assert np.diff(d.type_offsets).tolist() == [3025, 5959, 56, 1902] and d.num_nodes == 10942
    assert len(d.edge_src) == 547872 and d.num_edge_types == 8
    assert len(d.train_val_nodes) == 907 and len(d.test_nodes) == 2118
    assert d.num_classes == 3 and not d.multi_label and d.target_type == 0
    assert d.features[0].shape == (3025, 1902) and d.features[3] is None
    assert d.node_type_names == ["paper", "author", "subject", "term"]
    assert d.class_names == ["database", "wireless communication", "data mining"]
    src, dst, etype, num_etypes = build_homogeneous_graph(d)
    assert num_etypes == 17 and int((src == dst).sum()) == d.num_nodes
    assert input_dims(build_features(d, "target_only_one_hot")) == [1902, 5959, 56, 1902]
