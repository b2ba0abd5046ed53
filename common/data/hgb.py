"""The HGB (Heterogeneous Graph Benchmark) file format: reader, protocol helpers, generator, submission writers.

HGB (Lv et al., KDD 2021, arXiv 2112.14936; official code THUDM/HGB) ships every dataset as a folder of
tab-separated UTF-8 text files. Node ids are global, start at 0, and every node type owns one contiguous id
range, in type order (type 0 first, then type 1, ...):

    node.dat            node_id \\t node_name \\t node_type [\\t f1,f2,...,fk]   (names may be empty)
    link.dat            src_id \\t dst_id \\t link_type \\t weight               (reverse relations are own types)
    label.dat           node_id \\t node_name \\t node_type \\t label[,label...]  (train+val: 30% of the labels)
    label.dat.test      same; the test labels (70%)        label.dat.test_full: full test labels (2023 release)
    link.dat.test       same as link.dat; link-prediction test positives
    info.dat            JSON (ACM, DBLP, IMDB) or a plain-text table (Freebase): type, relation and class names
    meta.dat            counts only; never read (IMDB's copy is not valid JSON)

The official data is in the Google Drive folders named in `DATA_HINT`. Everything here is numpy/scipy;
`build_features` and `build_homogeneous_graph` return torch tensors ready for a model.

Deviations from the official loaders (THUDM/HGB `NC|LP/benchmark/scripts/data_loader.py`), all deliberate:
* every random draw is seeded (`np.random.default_rng(seed)`); the official code uses unseeded
  `np.random.shuffle` / `random.random`, and `random.seed(1)` for test negatives (same distributions, not
  the same draws);
* malformed input raises `DataError` naming the file and line instead of crashing or being skipped, and so
  does input that is well-formed but cannot be what the format promises (see `load_hgb`);
* features are float32 (official: float64);
* the 2-hop test-negative pool treats validation links as undirected, like every other link (official adds
  them in one direction only), and heads with no candidate negatives are dropped instead of crashing.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from common.errors import DataError, read_utf8

DATA_HINT = ("the HGB datasets come from the Google Drive folders of THUDM/HGB: node classification "
             "10-pf2ADCjq_kpJKFHHLHxr_czNNCJ3aX, link prediction 1RNOPAQ_jrHlNWMhfNT4wqclnW_O1PqYL; "
             "unzip e.g. ACM.zip so that $DATA_ROOT/ACM/node.dat exists (unzip ACM.zip -d $DATA_ROOT/ACM)")

# Named input-feature choices; index i is the official `--feats-type i`.
FEATURE_MODES = ("all", "target_only_zeros", "target_only_one_hot", "one_hot", "type2_one_hot", "type2_zeros")


@dataclass(repr=False)
class HGBData:
    """One HGB dataset folder, as numpy arrays indexed by global node id.

    Labels (node classification) come in two shapes, chosen by `multi_label`:
      single-label: `labels` int64 (N,), the label.dat class of each node, -1 where a node has none;
                    `test_labels` int64 (M,), aligned with `test_nodes`.
      multi-label:  `labels` float32 (N, C) multi-hot, all-zero rows where a node has none;
                    `test_labels` float32 (M, C), aligned with `test_nodes`.
    Test labels are kept apart from `labels` on purpose, so that training code cannot read them by accident.
    Datasets without label files (link prediction) have `labels=None`, `num_classes=0`, `target_type=None`.
    """

    name: str
    root: Path
    num_nodes: int
    node_type: np.ndarray            # (N,) int64, non-decreasing
    type_offsets: np.ndarray         # (T+1,) int64; type t owns ids type_offsets[t] : type_offsets[t+1]
    features: list                   # per type: float32 (N_t, F_t), or None if the type has no attributes
    edge_src: np.ndarray             # (E,) int64, link.dat order
    edge_dst: np.ndarray             # (E,) int64
    edge_type: np.ndarray            # (E,) int64 in [0, num_edge_types)
    edge_weight: np.ndarray          # (E,) float32 (1.0 in every released file; not used by the graph build)
    num_edge_types: int              # R = 1 + largest link type in link.dat / link.dat.test
    link_meta: np.ndarray            # (R, 2) int64 (head type, tail type) of each relation, from its first
                                     # link (as the official LP loader); -1 for a type id that has no link
    node_type_names: list = field(default_factory=list)   # from info.dat, else "type{t}"
    edge_type_names: list = field(default_factory=list)   # from info.dat, else "{head}-{tail}"
    class_names: list = field(default_factory=list)       # from info.dat (may list more than num_classes)
    # node classification
    target_type: int | None = None
    num_classes: int = 0             # 1 + largest label in label.dat and the test file (official rule)
    multi_label: bool = False
    labels: np.ndarray | None = None           # see class docstring
    train_val_nodes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # sorted
    test_nodes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))        # sorted
    test_labels: np.ndarray | None = None
    test_label_file: str | None = None         # "label.dat.test_full" or "label.dat.test"
    # link prediction
    test_links: np.ndarray | None = None       # (M, 3) int64 [head, tail, relation] from link.dat.test

    @property
    def num_node_types(self):
        return len(self.type_offsets) - 1

    def type_range(self, t):
        """(first id, one past the last id) of node type t."""
        return int(self.type_offsets[t]), int(self.type_offsets[t + 1])

    def __repr__(self):
        counts = np.diff(self.type_offsets).tolist()
        return (f"HGBData({self.name!r}, nodes={self.num_nodes} {counts}, links={len(self.edge_src)}, "
                f"relations={self.num_edge_types}, classes={self.num_classes}, multi_label={self.multi_label}, "
                f"train_val={len(self.train_val_nodes)}, test={len(self.test_nodes)}, "
                f"test_links={0 if self.test_links is None else len(self.test_links)})")


# ----------------------------------------------------------------------------------------------------------
# Reading

def load_hgb(root, dataset=None):
    """Read an HGB dataset folder (`root`, or `root/dataset` when `dataset` is given) into an `HGBData`.

    Only node.dat and link.dat are required. The NC test labels come from label.dat.test_full when it exists
    (the complete test set of the 2023 release) and from label.dat.test otherwise.

    Validated (a `DataError` naming the file and line otherwise): UTF-8 text; field counts and integer ids;
    node ids exactly 0..N-1 with contiguous type ranges; finite features of one width per type; link endpoints
    in range; a non-empty link.dat (and link.dat.test when present); every link of a type joining the same
    pair of node types (that of its first link, and that of info.dat's "start"/"end" when given); label files
    that are not empty, label only target-type nodes once each, share no node between label.dat and the test
    file (test labels would leak into training), and hold class ids of info.dat's classes (without class
    names in info.dat: ids 0..C-1 with every class used, so one stray id cannot add empty classes).
    """
    folder = Path(root) if dataset is None else Path(root) / dataset
    _check_folder(folder)
    node_type, type_offsets, features = _parse_nodes(folder / "node.dat")
    n = len(node_type)
    src, dst, etype, weight = _parse_links(folder / "link.dat", n)
    test_links = None
    if (folder / "link.dat.test").exists():
        ts, td, tt, _ = _parse_links(folder / "link.dat.test", n)
        test_links = np.stack([ts, td, tt], axis=1)
    all_types = etype if test_links is None else np.concatenate([etype, test_links[:, 2]])
    num_edge_types = int(all_types.max()) + 1 if len(all_types) else 0
    link_meta = _link_meta(num_edge_types, node_type, (src, dst, etype),
                           None if test_links is None else tuple(test_links.T))
    _check_link_types(folder, node_type, link_meta, (src, dst, etype), test_links)

    data = HGBData(name=folder.name, root=folder, num_nodes=n, node_type=node_type, type_offsets=type_offsets,
                   features=features, edge_src=src, edge_dst=dst, edge_type=etype, edge_weight=weight,
                   num_edge_types=num_edge_types, link_meta=link_meta, test_links=test_links)
    parsed = _read_labels(data, folder)
    _read_info(data, folder / "info.dat")
    _check_classes(data, folder, parsed)
    return data


def _check_folder(folder):
    if not folder.is_dir():
        raise DataError(folder, "expected an HGB dataset folder holding node.dat and link.dat; it does not exist",
                        hint=DATA_HINT)
    for name in ("node.dat", "link.dat"):
        if not (folder / name).is_file():
            nested = sorted(p.parent for p in folder.glob(f"*/{name}"))
            hint = f"found {nested[0]}; pass that folder instead" if nested else DATA_HINT
            raise DataError(folder / name, f"expected the HGB file {name} in this dataset folder", hint=hint)


def _read_lines(path):
    """Lines of a text file without line endings (LF and CRLF alike); trailing blank lines dropped."""
    text = read_utf8(path, "utf-8-sig")                     # DataError with the line of a non-UTF-8 byte
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _parse_nodes(path):
    """node.dat -> node_type (N,), type_offsets (T+1,), features per type (see `HGBData`)."""
    lines = _read_lines(path)
    if not lines:
        raise DataError(path, "expected one line per node, found an empty file")
    n = len(lines)
    ids, types = np.empty(n, np.int64), np.empty(n, np.int64)
    feat_text = {}                                          # line index -> "f1,f2,..."
    for i, line in enumerate(lines):
        parts = line.split("\t")
        if len(parts) not in (3, 4):
            raise DataError(path, "expected 3 or 4 tab-separated fields (node_id, node_name, node_type"
                            f"[, comma-separated features]), found {len(parts)}", line=i + 1)
        try:
            ids[i], types[i] = int(parts[0]), int(parts[2])
        except ValueError:
            raise DataError(path, f"expected integer node_id and node_type, found {parts[0]!r} and {parts[2]!r}",
                            line=i + 1) from None
        if len(parts) == 4:
            feat_text[i] = parts[3]

    # Ids must be exactly 0..N-1 (in any line order).
    order = np.argsort(ids, kind="stable")                  # order[id] = line index of node id
    sorted_ids = ids[order]
    bad = np.flatnonzero(sorted_ids != np.arange(n))
    if len(bad):
        j = bad[0]
        if j > 0 and sorted_ids[j] == sorted_ids[j - 1]:
            msg = f"expected each node id once; id {sorted_ids[j]} is also on line {order[j - 1] + 1}"
        else:
            msg = f"expected node ids 0..{n - 1} (one line per node); id {j} is missing"
        raise DataError(path, msg, line=int(order[j]) + 1)

    node_type = types[order]
    if node_type.min() < 0:
        raise DataError(path, "expected a non-negative node_type", line=int(order[np.argmin(node_type)]) + 1)
    down = np.flatnonzero(np.diff(node_type) < 0)
    if len(down):
        k = down[0] + 1
        raise DataError(path, "expected each node type to own one contiguous id range in type order (type 0 "
                        f"first, then 1, ...); node {k} has type {node_type[k]} after node {k - 1} of type "
                        f"{node_type[k - 1]}", line=int(order[k]) + 1)
    counts = np.bincount(node_type)
    if (counts == 0).any():
        raise DataError(path, f"expected node types 0..{len(counts) - 1}, each with nodes; type "
                        f"{int(np.argmin(counts))} has none")
    type_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    # As the official loader: a type has features iff its first node has them (else they are ignored).
    features = []
    for t in range(len(counts)):
        lo, hi = type_offsets[t], type_offsets[t + 1]
        first = int(order[lo])
        if first not in feat_text:
            features.append(None)
            continue
        rows = []
        for v in range(lo, hi):
            i = int(order[v])
            if i not in feat_text:
                raise DataError(path, f"expected features for node {v}: node type {t} has features (its first "
                                f"node, line {first + 1}, has them)", line=i + 1)
            try:
                row = np.array(feat_text[i].split(","), dtype=np.float32)
            except ValueError:
                raise DataError(path, "expected comma-separated float features", line=i + 1) from None
            if not np.isfinite(row).all():
                raise DataError(path, f"expected finite features, found {row[~np.isfinite(row)][0]} for node {v}",
                                line=i + 1)
            if rows and len(row) != len(rows[0]):
                raise DataError(path, f"expected {len(rows[0])} features like the first node of type {t} "
                                f"(line {first + 1}), found {len(row)}", line=i + 1)
            rows.append(row)
        features.append(np.stack(rows))                     # (N_t, F_t)
    return node_type, type_offsets, features


def _parse_links(path, num_nodes):
    """link.dat / link.dat.test -> src, dst, link_type (int64) and weight (float32), each (E,), file order."""
    lines = _read_lines(path)
    if not lines:
        raise DataError(path, "expected one link per line, found an empty file", hint=DATA_HINT)
    # Structure first (one cheap pass), then one vectorised conversion per column.
    for i, line in enumerate(lines):
        if line.count("\t") != 3:
            raise DataError(path, "expected 4 tab-separated fields (src_id, dst_id, link_type, weight), "
                            f"found {line.count(chr(9)) + 1}", line=i + 1)
    fields = "\t".join(lines).split("\t")
    try:
        src = np.array(fields[0::4], dtype=np.int64)
        dst = np.array(fields[1::4], dtype=np.int64)
        etype = np.array(fields[2::4], dtype=np.int64)
        weight = np.array(fields[3::4], dtype=np.float32)
    except ValueError:
        for i, line in enumerate(lines):                    # slow path only to name the bad line
            s, d, r, w = line.split("\t")
            try:
                int(s), int(d), int(r), float(w)
            except ValueError:
                raise DataError(path, "expected integer src_id, dst_id, link_type and a float weight",
                                line=i + 1) from None
        raise DataError(path, "expected integer src_id, dst_id, link_type and a float weight") from None
    bad = np.flatnonzero((src < 0) | (src >= num_nodes) | (dst < 0) | (dst >= num_nodes))
    if len(bad):
        raise DataError(path, f"expected node ids in 0..{num_nodes - 1} (node.dat), found "
                        f"{src[bad[0]]} -> {dst[bad[0]]}", line=int(bad[0]) + 1)
    if len(etype) and etype.min() < 0:
        raise DataError(path, "expected a non-negative link_type", line=int(np.argmin(etype)) + 1)
    return src, dst, etype, weight


def _link_meta(num_edge_types, node_type, *link_sets):
    """(R, 2) head/tail node type of each relation, taken from its first link (link.dat before link.dat.test)."""
    meta = np.full((num_edge_types, 2), -1, np.int64)
    for links in link_sets:
        if links is None:
            continue
        src, dst, etype = links
        rels, first = np.unique(etype, return_index=True)
        unset = meta[rels, 0] < 0
        meta[rels[unset], 0] = node_type[src[first[unset]]]
        meta[rels[unset], 1] = node_type[dst[first[unset]]]
    return meta


def _info_link_ends(path):
    """{link type: (start type, end type)} from a JSON info.dat's "link.dat"/"link type" table; {} otherwise."""
    try:
        table = json.loads(path.read_text(encoding="utf-8", errors="replace"))["link.dat"]["link type"]
        return {int(k): (int(v["start"]), int(v["end"])) for k, v in table.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _check_link_types(folder, node_type, link_meta, links, test_links):
    """Every link of a type joins the node types of that type's first link, and those of info.dat if given."""
    for r, ends in _info_link_ends(folder / "info.dat").items():
        if r < len(link_meta) and link_meta[r, 0] >= 0 and tuple(link_meta[r]) != ends:
            raise DataError(folder / "link.dat", f"link type {r} joins node types {tuple(link_meta[r].tolist())} "
                            f"in its first link, but info.dat says {ends} (start, end)")
    sets = [("link.dat", links)]
    if test_links is not None:
        sets.append(("link.dat.test", tuple(test_links.T)))
    for name, (src, dst, etype) in sets:
        bad = np.flatnonzero((node_type[src] != link_meta[etype, 0]) | (node_type[dst] != link_meta[etype, 1]))
        if len(bad):
            i = int(bad[0])
            r = int(etype[i])
            raise DataError(folder / name, f"link {src[i]} -> {dst[i]} of type {r} joins node types "
                            f"({node_type[src[i]]}, {node_type[dst[i]]}), but type {r} joins "
                            f"{tuple(link_meta[r].tolist())} (its first link)", line=i + 1)


def _parse_labels(path, node_type):
    """label file -> (node ids (M,) int64 in file order, list of label lists, node type of the first line)."""
    lines = _read_lines(path)
    if not lines:
        raise DataError(path, "expected one labelled node per line, found an empty file", hint=DATA_HINT)
    nodes, labels, seen = [], [], {}
    for i, line in enumerate(lines):
        parts = line.split("\t")
        if len(parts) != 4:
            raise DataError(path, "expected 4 tab-separated fields (node_id, node_name, node_type, "
                            f"label[,label...]), found {len(parts)}", line=i + 1)
        try:
            v, t = int(parts[0]), int(parts[2])
            labs = [int(x) for x in parts[3].split(",")]
        except ValueError:
            raise DataError(path, "expected integer node_id and node_type and comma-separated integer labels",
                            line=i + 1) from None
        if not 0 <= v < len(node_type):
            raise DataError(path, f"expected a node id in 0..{len(node_type) - 1} (node.dat), found {v}",
                            line=i + 1)
        if t != node_type[v]:
            raise DataError(path, f"expected node_type {node_type[v]} for node {v} (node.dat), found {t}",
                            line=i + 1)
        if min(labs) < 0:
            raise DataError(path, "expected non-negative labels", line=i + 1)
        if v in seen:
            raise DataError(path, f"expected each node once; node {v} is also on line {seen[v]}", line=i + 1)
        seen[v] = i + 1
        nodes.append(v)
        labels.append(labs)
    return np.array(nodes, dtype=np.int64), labels


def _read_labels(data, folder):
    """Fill the node-classification fields of `data` from label.dat and label.dat.test(_full)."""
    test_name = next((f for f in ("label.dat.test_full", "label.dat.test") if (folder / f).is_file()), None)
    files = [f for f in ("label.dat", test_name) if f is not None and (folder / f).is_file()]
    if not files:
        return {}
    parsed = {f: _parse_labels(folder / f, data.node_type) for f in files}
    if len(parsed) == 2:                                    # test labels must never reach training
        (train_name, (train_nodes, _)), (test_file, (test_nodes, _)) = parsed.items()
        both = np.flatnonzero(np.isin(test_nodes, train_nodes))
        if len(both):
            k = int(both[0])
            v = int(test_nodes[k])
            raise DataError(folder / test_file, f"node {v} is labelled here and in {train_name} (line "
                            f"{int(np.flatnonzero(train_nodes == v)[0]) + 1}); a node is either a training or a "
                            f"test node ({len(both)} such nodes)", line=k + 1)
    target = None
    for f, (nodes, _) in parsed.items():
        for k, v in enumerate(nodes):
            t = int(data.node_type[v])
            if target is None:
                target = t
            elif t != target:
                raise DataError(folder / f, f"expected every labelled node to have the target type {target}, "
                                f"node {v} has type {t}", line=k + 1)
    label_lists = [ls for _, lists in parsed.values() for ls in lists]
    data.target_type = target
    data.num_classes = max((max(ls) for ls in label_lists), default=-1) + 1
    data.multi_label = any(len(ls) > 1 for ls in label_lists)
    data.test_label_file = test_name

    def dense(nodes, labs):                                 # -> sorted nodes, aligned label array
        order = np.argsort(nodes)
        if data.multi_label:
            y = np.zeros((len(nodes), data.num_classes), np.float32)
            for row, ls in enumerate(labs):
                y[row, ls] = 1.0
        else:
            y = np.array([ls[0] for ls in labs], dtype=np.int64)
        return nodes[order], y[order]

    tv_nodes, tv_y = dense(*parsed["label.dat"]) if "label.dat" in parsed else dense(np.zeros(0, np.int64), [])
    if data.multi_label:
        data.labels = np.zeros((data.num_nodes, data.num_classes), np.float32)
    else:
        data.labels = np.full(data.num_nodes, -1, np.int64)
    data.labels[tv_nodes] = tv_y
    data.train_val_nodes = tv_nodes
    if test_name is not None:
        data.test_nodes, data.test_labels = dense(*parsed[test_name])
    return parsed


def _check_classes(data, folder, parsed):
    """Class ids within info.dat's class list, or (no class names there) 0..C-1 with every class used.

    parsed: {label file name: (nodes, label lists)} as `_read_labels` read them.
    """
    lines = [(f, k + 1, max(ls)) for f, (_, lists) in parsed.items() for k, ls in enumerate(lists)]
    if not lines:
        return
    f, line, top = max(lines, key=lambda x: x[2])          # the largest id: the likeliest stray one
    if data.class_names:
        if top >= len(data.class_names):
            raise DataError(folder / f, f"label {top} is outside the {len(data.class_names)} classes that "
                            f"info.dat names (0..{len(data.class_names) - 1})", line=line)
        return
    used = {c for _, lists in parsed.values() for ls in lists for c in ls}
    missing = sorted(set(range(top + 1)) - used)
    if missing:
        raise DataError(folder / f, f"label {top} makes {top + 1} classes, but class {missing[0]} has no labelled "
                        f"node ({len(missing)} unused ids; class ids must be 0..C-1, each used, when info.dat "
                        "names no classes)", line=line)


def _read_info(data, path):
    """Best-effort names from info.dat (JSON or Freebase's plain-text table); never fails."""
    type_names, link_names, class_names = {}, {}, []
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        try:
            info = json.loads(text)
        except ValueError:
            info = None
        if isinstance(info, dict):
            type_names, link_names, class_names = _info_from_json(info, data.target_type)
        else:
            type_names, link_names, class_names = _info_from_table(text)
    data.node_type_names = [str(type_names.get(t, f"type{t}")) for t in range(data.num_node_types)]
    data.edge_type_names = [str(link_names.get(r, f"{data.link_meta[r, 0]}-{data.link_meta[r, 1]}"))
                            for r in range(data.num_edge_types)]
    data.class_names = [str(c) for c in class_names]


def _info_from_json(info, target_type):
    type_names, link_names, class_names = {}, {}, []
    try:
        type_names = {int(k): v for k, v in info["node.dat"]["node type"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        pass
    try:
        for k, v in info["link.dat"]["link type"].items():
            link_names[int(k)] = v.get("meaning", str(k)) if isinstance(v, dict) else v
    except (KeyError, TypeError, ValueError, AttributeError):
        pass
    try:
        per_type = info["label.dat"]["node type"]
        classes = per_type.get(str(target_type), next(iter(per_type.values())))
        class_names = [classes[k] for k in sorted(classes, key=int)]
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration):
        pass
    return type_names, link_names, class_names


def _info_from_table(text):
    """Freebase-style sections: a header line (TYPE..., LINK..., LABEL...) followed by rows `id \\t ... \\t name`."""
    type_names, link_names, class_names, section = {}, {}, [], None
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("\t") if c.strip()]
        if not cells:
            section = None
            continue
        head = cells[0].upper()
        if head.startswith(("TYPE", "NODE")):
            section = "type"
        elif head.startswith("LINK"):
            section = "link"
        elif head.startswith(("LABEL", "CLASS")):
            section = "label"
        elif section is not None and cells[0].isdigit() and len(cells) > 1:
            k = int(cells[0])
            if section == "type":
                type_names[k] = cells[-1]
            elif section == "link":
                link_names[k] = cells[-1]
            elif section == "label":
                class_names.append(cells[-1])
    return type_names, link_names, class_names


# ----------------------------------------------------------------------------------------------------------
# Node classification protocol and inputs

def split_train_val(train_val_nodes, val_fraction=0.2, seed=0):
    """Split label.dat's nodes into sorted (train, val) ids: a seeded shuffle, the first `val_fraction` is val.

    As the official `load_data` (int(n * val_fraction) nodes to val) but seeded. With label.dat holding 30%
    of the labels, this gives HGB's 24% / 6% / 70% train / val / test split.
    """
    nodes = np.random.default_rng(seed).permutation(np.asarray(train_val_nodes, dtype=np.int64))
    n_val = int(len(nodes) * val_fraction)
    return np.sort(nodes[n_val:]), np.sort(nodes[:n_val])


@dataclass(frozen=True)
class OneHot:
    """Input marker: this node type's features are the N_t x N_t identity (one-hot node id).

    Never materialised: `Linear(eye(n))` equals `linear.weight.T + linear.bias`, so a model holds a per-type
    embedding table instead (Freebase: 180,098 rows).
    """

    num_nodes: int


def build_features(data, mode="all"):
    """Per node type input: a float32 tensor (N_t, F_t) or `OneHot(N_t)`, for one of `FEATURE_MODES`.

    mode (official --feats-type)       kept types                       other types
    "all"                 (0)          every type's own features        -            (featureless: OneHot)
    "target_only_zeros"   (1)          target type                      zeros (N_t, 10)
    "target_only_one_hot" (2)          target type                      OneHot
    "one_hot"             (3)          none                             OneHot (every type)
    "type2_one_hot"       (4)          type 2 (DBLP's term)             OneHot
    "type2_zeros"         (5)          type 2                           zeros (N_t, 10)
    The official code keeps type 0 in modes 1/2, which is the target type of every HGB NC dataset; here the
    target type is kept (type 0 when there are no labels). A kept type without features is OneHot, as in the
    official code.
    """
    if mode not in FEATURE_MODES:
        raise ValueError(f"unknown feature mode {mode!r}; choose one of {', '.join(FEATURE_MODES)}")
    target = data.target_type if data.target_type is not None else 0
    keep = {"all": None, "target_only_zeros": target, "target_only_one_hot": target, "one_hot": -1,
            "type2_one_hot": 2, "type2_zeros": 2}[mode]
    out = []
    for t, x in enumerate(data.features):
        n_t = int(data.type_offsets[t + 1] - data.type_offsets[t])
        if (keep is None or keep == t) and x is not None:
            out.append(torch.from_numpy(x))                 # shares memory with data.features
        elif (keep is None or keep == t) or not mode.endswith("zeros"):
            out.append(OneHot(n_t))
        else:
            out.append(torch.zeros(n_t, 10))
    return out


def input_dims(features):
    """Input width of each type's first layer: F_t for a tensor, N_t for `OneHot`."""
    return [f.num_nodes if isinstance(f, OneHot) else int(f.shape[1]) for f in features]


# ----------------------------------------------------------------------------------------------------------
# Graph

def build_homogeneous_graph(data, symmetric=True, links=None):
    """The message-passing graph of the official Simple-HGN drivers, with one edge-type id per edge.

    symmetric=True (run_new.py: DBLP, ACM, Freebase, and the LP drivers), R = data.num_edge_types:
      edges = every link u->v, its reverse v->u, and one self-loop per node (duplicates collapsed);
      type of u->v: its link type r (if several relations hold u->v, the one appearing last in link.dat's
      first-appearance order of relations, as the official dict overwrite); self-loop i->i: R unless a link
      i->i exists; a reverse-only edge v->u: r + 1 + R with r the first such relation.  num_etypes = 2R + 1.
    symmetric=False (run_multi.py: IMDB, whose link.dat already has both directions): links + self-loops,
      same typing without the reverse types; num_etypes = R + 1.
    `links`: optional (M, 3) [src, dst, relation] used instead of link.dat (e.g. LP train links).

    Returns src, dst, etype (E,) int64 tensors sorted by (dst, src) -- incoming edges of a node are contiguous,
    convenient for CSR / segment ops -- and num_etypes.
    """
    n, num_rel = data.num_nodes, data.num_edge_types
    if links is None:
        src, dst, rel = data.edge_src, data.edge_dst, data.edge_type
    else:
        links = np.asarray(links, dtype=np.int64)
        src, dst, rel = links[:, 0], links[:, 1], links[:, 2]
    # The official code iterates relations in the order they first appear (a dict filled from link.dat).
    rels, first_seen = np.unique(rel, return_index=True)
    rank = np.zeros(max(num_rel, int(rel.max()) + 1 if len(rel) else 0), np.int64)
    rank[rels[np.argsort(first_seen)]] = np.arange(len(rels))

    key = src * n + dst
    order = np.lexsort((rank[rel], key))                    # by pair, then relation rank
    key, rel = key[order], rel[order]
    pair, lowest, count = np.unique(key, return_index=True, return_counts=True)   # (P,) unique pairs, sorted
    fwd_type = rel[lowest + count - 1]                      # last (highest-rank) relation of each pair
    rev_rel = rel[lowest]                                   # first (lowest-rank) relation of each pair

    loops = np.arange(n, dtype=np.int64) * (n + 1)
    typed, at = _lookup(pair, loops)
    loop_type = np.full(n, num_rel, np.int64)
    loop_type[typed] = fwd_type[at[typed]]

    u, v = pair // n, pair % n
    off = u != v
    keys, types = [pair[off], loops], [fwd_type[off], loop_type]
    if symmetric:
        rkey = v[off] * n + u[off]
        new = ~_lookup(pair, rkey)[0]                       # reverse pair not already a typed link
        keys.append(rkey[new])
        types.append(rev_rel[off][new] + 1 + num_rel)
    keys, types = np.concatenate(keys), np.concatenate(types)
    s, d = keys // n, keys % n
    order = np.lexsort((s, d))
    num_etypes = 2 * num_rel + 1 if symmetric else num_rel + 1
    return (torch.from_numpy(s[order]), torch.from_numpy(d[order]), torch.from_numpy(types[order]), num_etypes)


def _lookup(sorted_keys, queries):
    """(found (Q,) bool, index (Q,) into sorted_keys, valid where found)."""
    at = np.minimum(np.searchsorted(sorted_keys, queries), max(len(sorted_keys) - 1, 0))
    found = sorted_keys[at] == queries if len(sorted_keys) else np.zeros(len(queries), bool)
    return found, at


# ----------------------------------------------------------------------------------------------------------
# Link prediction protocol

def split_lp_train_valid(data, valid_fraction=0.1, seed=0):
    """Official LP train/valid split of link.dat -> (train_links, valid_links), each (M, 3) [head, tail, rel].

    Per relation, links in CSR order (by head, then tail; duplicates collapsed): the first link of each head
    stays in train, every later one goes to valid with probability `valid_fraction` (seeded). Build the
    message-passing graph from train_links only (`build_homogeneous_graph(data, links=train_links)`).
    """
    triples = np.unique(np.stack([data.edge_type, data.edge_src, data.edge_dst], axis=1), axis=0)  # (M, 3)
    new_head = np.ones(len(triples), bool)
    new_head[1:] = (triples[1:, :2] != triples[:-1, :2]).any(axis=1)
    to_valid = (np.random.default_rng(seed).random(len(triples)) < valid_fraction) & ~new_head
    links = triples[:, [1, 2, 0]]
    return links[~to_valid], links[to_valid]


def sample_random_negatives(heads, tail_type_range, rng):
    """One uniform random tail in [lo, hi) per head (train/valid negatives; no collision check, as official)."""
    lo, hi = tail_type_range
    return rng.integers(lo, hi, size=len(heads), dtype=np.int64)


def _neighbour_matrix(data):
    """(N, N) CSR with 1 where any link.dat or link.dat.test link joins two nodes, in either direction."""
    src, dst = [data.edge_src], [data.edge_dst]
    if data.test_links is not None:
        src.append(data.test_links[:, 0])
        dst.append(data.test_links[:, 1])
    s, d = np.concatenate(src + dst), np.concatenate(dst + src)
    p = sp.csr_matrix((np.ones(len(s), np.float32), (s, d)), shape=(data.num_nodes, data.num_nodes))
    p.data[:] = 1.0                                         # duplicates were summed
    return p


def _test_positives(data, relation):
    if data.test_links is None:
        raise DataError(data.root / "link.dat.test", "expected link-prediction test links", hint=DATA_HINT)
    pairs = np.unique(data.test_links[data.test_links[:, 2] == relation, :2], axis=0)   # sorted by head, tail
    if not len(pairs):
        raise ValueError(f"relation {relation} has no links in link.dat.test")
    return pairs


def _with_negatives(pos, neg_tails, keep):
    """Interleave per head: its positives, then its negatives. -> heads, tails, labels (int64)."""
    pos = pos[keep]
    heads = np.concatenate([pos[:, 0], pos[:, 0]])
    tails = np.concatenate([pos[:, 1], neg_tails[keep]])
    labels = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(pos), np.int64)])
    order = np.argsort(heads, kind="stable")
    return heads[order], tails[order], labels[order]


def test_negatives_two_hop(data, relation, seed=1):
    """HGB's leaderboard test set for one relation: its link.dat.test positives plus "2-hop" negatives.

    For a head h with k positives, k tails are drawn with replacement among its 2-hop non-neighbours: nodes
    of the relation's tail type reachable in two steps in the undirected graph of all links (link.dat and
    link.dat.test), not linked to h, and not h. Heads without such a node are dropped (the official code
    crashes on them). Returns heads, tails, labels (1 positive, 0 negative), int64, grouped by head.
    """
    pos = _test_positives(data, relation)
    lo, hi = data.type_range(int(data.link_meta[relation, 1]))
    p = _neighbour_matrix(data)
    heads, inv = np.unique(pos[:, 0], return_inverse=True)
    p_heads = p[heads]                                      # (H, N)
    two_hop = (p_heads @ p[:, lo:hi]).tocsr()               # (H, N_t); P is symmetric
    two_hop.sort_indices()                                  # candidate order fixed -> same draws everywhere
    rows, cols = two_hop.nonzero()
    direct_r, direct_c = p_heads[:, lo:hi].nonzero()
    width = hi - lo
    keep = ~np.isin(rows * width + cols, direct_r * width + direct_c) & (cols + lo != heads[rows])
    rows, cols = rows[keep], cols[keep]                     # row-sorted candidate lists
    counts = np.bincount(rows, minlength=len(heads))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rng = np.random.default_rng(seed)
    pick = starts[inv] + np.floor(rng.random(len(pos)) * counts[inv]).astype(np.int64)
    has = counts[inv] > 0
    neg = np.full(len(pos), -1, np.int64)
    neg[has] = cols[pick[has]] + lo
    return _with_negatives(pos, neg, has)


def test_negatives_random(data, relation, seed=1):
    """HGB's "random" test set: per positive (h, t), one tail uniform over the relation's tail type that is not
    linked to h in link.dat or link.dat.test (either direction). Heads linked to every such node are dropped.
    Returns heads, tails, labels as `test_negatives_two_hop`.
    """
    pos = _test_positives(data, relation)
    lo, hi = data.type_range(int(data.link_meta[relation, 1]))
    n = data.num_nodes
    p = _neighbour_matrix(data)
    pr, pc = p.nonzero()
    linked = np.sort(pr * n + pc)
    has = p[pos[:, 0]][:, lo:hi].getnnz(axis=1) < hi - lo
    rng = np.random.default_rng(seed)
    tails = np.full(len(pos), -1, np.int64)
    todo = np.flatnonzero(has)
    while len(todo):                                        # rejection sampling, all heads at once
        cand = rng.integers(lo, hi, size=len(todo))
        bad = _lookup(linked, pos[todo, 0] * n + cand)[0]
        tails[todo[~bad]] = cand[~bad]
        todo = todo[bad]
    return _with_negatives(pos, tails, has)


# pytest would collect these two if a test module imported them by name.
test_negatives_two_hop.__test__ = test_negatives_random.__test__ = False


# ----------------------------------------------------------------------------------------------------------
# Synthetic data in the same file format

_TYPE_NAMES = ("paper", "author", "subject", "term")


def write_synthetic_hgb(out_dir, *, num_nodes_per_type=(400, 300, 40, 200), num_classes=3,
                        edge_types=((0, 0), (0, 1), (1, 0), (0, 2), (2, 0), (0, 3), (3, 0)),
                        feature_dims=(32, 16, 8, 0), mean_degree=3.0, homophily=0.8, feature_signal=1.0,
                        seed=0, label_noise=0.0, shuffle_labels=False, multi_label=False, task="nc",
                        lp_relations=(1,), lp_test_fraction=0.2, decoy_relations=()):
    """Write a small HGB-format dataset with a planted, learnable signal to `out_dir`; returns its Path.

    Every node has a latent class (type 0, the target, is labelled with it). Each node of a relation's head
    type gets 1 + Poisson(mean_degree - 1) links, whose tail has the head's class with probability
    `homophily` (else a uniform tail), so a node's class can be read off its neighbourhood. `mean_degree` and
    `homophily` take one value for all relations or one per relation (in `edge_types` order; a reverse
    relation copies its forward one, so its own entry is unused). Features are
    `feature_signal * unit class direction + N(0, I)`: weakly informative alone. A relation (b, a) listed
    after (a, b) is written as its exact reverse (a separate type, as in ACM/DBLP); `feature_dims[t] = 0`
    writes 3-field node lines (a featureless type). Every 10th node name is empty.

    task="nc": label.dat holds a random 30% of the target nodes, label.dat.test the other 70% (empty names,
      as ACM). multi_label=True gives about half of the targets a second class that also shapes their links
      and features. label_noise replaces that fraction of written labels with random ones; shuffle_labels
      permutes the written labels over the targets (a chance-level control).
    task="lp": no label files; link.dat.test holds a random `lp_test_fraction` of the links of each relation
      in `lp_relations` (indices into edge_types), removed from link.dat together with their reverse copies.

    Planted edge-type signal (`decoy_relations`, indices into edge_types): a decoy relation's link tails, with
    probability `homophily`, take a class other than the head's (uniform over the other C - 1), else a
    uniform class. Give a decoy relation the same head and tail types as a homophilous one and
    (C - 1) * homophily_h / homophily_d times its mean degree: then, summed over both relations, every class
    of tail is equally frequent around every head whatever its class, in both directions, so a model that
    ignores edge types (GCN, GAT) sees no class in the neighbourhood, and the class is read only from which
    relation a link has. Simple-HGN's edge-type attention term can do that; additive GAT attention cannot
    select same-class neighbours either (its ranking of the neighbours j is the same for every i).
    Deterministic given its arguments; the defaults write exactly the files of earlier versions.
    """
    if task not in ("nc", "lp"):
        raise ValueError(f"task must be 'nc' or 'lp', got {task!r}")
    if len(feature_dims) != len(num_nodes_per_type):
        raise ValueError("feature_dims needs one entry per node type")
    rng = np.random.default_rng(seed)
    counts = np.array(num_nodes_per_type, np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    n, c = int(offsets[-1]), num_classes
    node_type = np.repeat(np.arange(len(counts)), counts)
    cls = rng.integers(0, c, n)                             # latent class of every node
    n0 = int(counts[0])
    second = np.full(n0, -1)                                # optional second class of each target
    if multi_label:
        has2 = rng.random(n0) < 0.5
        second[has2] = (cls[:n0][has2] + rng.integers(1, c, has2.sum())) % c

    def per_relation(value, what):
        if np.ndim(value) and len(value) != len(edge_types):
            raise ValueError(f"{what} needs one value or one per relation ({len(edge_types)}), got {value}")
        return np.broadcast_to(np.asarray(value, np.float64), (len(edge_types),))

    degrees, homophilies = per_relation(mean_degree, "mean_degree"), per_relation(homophily, "homophily")
    if not set(decoy_relations) <= set(range(len(edge_types))):
        raise ValueError(f"decoy_relations must index edge_types (0..{len(edge_types) - 1}), got {decoy_relations}")

    # Links, relation by relation; a reverse relation copies its forward relation transposed.
    rel_links, paired = [], {}
    for r, (a, b) in enumerate(edge_types):
        fwd = next((j for j, (x, y) in enumerate(edge_types[:r]) if (x, y) == (b, a) and j not in paired), None)
        if fwd is not None:
            paired[fwd], paired[r] = r, fwd
            rel_links.append(rel_links[fwd][:, ::-1].copy())
            continue
        heads = np.repeat(np.arange(offsets[a], offsets[a + 1]), 1 + rng.poisson(degrees[r] - 1, counts[a]))
        want = cls[heads].copy()
        if multi_label and a == 0:                          # a two-class target links to both classes
            two = (second[heads - offsets[0]] >= 0) & (rng.random(len(heads)) < 0.5)
            want[two] = second[heads[two] - offsets[0]]
        if r in decoy_relations:                            # any class but the head's
            want = (want + rng.integers(1, c, len(heads))) % c
        tails = rng.integers(offsets[b], offsets[b + 1], len(heads))
        same = rng.random(len(heads)) < homophilies[r]
        for k in range(c):
            pool = np.flatnonzero(cls[offsets[b]:offsets[b + 1]] == k) + offsets[b]
            sel = same & (want == k)
            if len(pool):
                tails[sel] = pool[rng.integers(0, len(pool), sel.sum())]
        pairs = np.unique(np.stack([heads, tails], axis=1), axis=0)
        rel_links.append(pairs[pairs[:, 0] != pairs[:, 1]])

    test_blocks = []
    if task == "lp":
        for r in lp_relations:
            out = rng.random(len(rel_links[r])) < lp_test_fraction
            test_blocks.append((rel_links[r][out], r))
            if r in paired:                                 # drop the reverse copies too (no test leak)
                rev = rel_links[paired[r]]
                held = rel_links[r][out]
                rel_links[paired[r]] = rev[~np.isin(rev[:, 1] * n + rev[:, 0], held[:, 0] * n + held[:, 1])]
            rel_links[r] = rel_links[r][~out]

    # Features: class direction (unit norm, scaled) plus standard normal noise.
    feats = []
    for t, dim in enumerate(feature_dims):
        if dim == 0:
            feats.append(None)
            continue
        mu = rng.normal(size=(c, dim))
        mu *= feature_signal / np.linalg.norm(mu, axis=1, keepdims=True)
        x = mu[cls[offsets[t]:offsets[t + 1]]] + rng.normal(size=(counts[t], dim))
        if t == 0 and multi_label:
            x[second >= 0] += mu[second[second >= 0]]
        feats.append(x)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [_TYPE_NAMES[t] if t < len(_TYPE_NAMES) else f"type{t}" for t in range(len(counts))]
    with open(out_dir / "node.dat", "w", encoding="utf-8") as f:
        for v in range(n):
            t, local = int(node_type[v]), v - int(offsets[node_type[v]])
            line = f"{v}\t{'' if local % 10 == 0 else f'{names[t]}_{local}'}\t{t}"
            if feats[t] is not None:
                line += "\t" + ",".join(f"{z:.4f}" for z in feats[t][local])
            f.write(line + "\n")
    _write_links(out_dir / "link.dat", [(p, r) for r, p in enumerate(rel_links)])
    if test_blocks:
        _write_links(out_dir / "link.dat.test", test_blocks)

    if task == "nc":
        # Same draws whatever the controls, so label_noise / shuffle_labels change the labels and nothing else.
        noise_u, noise_class = rng.random(n0), rng.integers(0, c, n0)
        shuffle = rng.permutation(n0)
        order = rng.permutation(n0)                         # files list nodes in random order, as ACM
        labels = [[int(cls[v])] + ([int(second[v])] if second[v] >= 0 else []) for v in range(n0)]
        for v in np.flatnonzero(noise_u < label_noise):
            labels[v] = [int(noise_class[v])]
        if shuffle_labels:
            labels = [labels[v] for v in shuffle]
        n_train = round(0.3 * n0)
        for fname, part in (("label.dat", order[:n_train]), ("label.dat.test", order[n_train:])):
            with open(out_dir / fname, "w", encoding="utf-8") as f:
                for v in part:
                    f.write(f"{v}\t\t0\t{','.join(map(str, sorted(labels[v])))}\n")

    info = {"node.dat": {"node type": {str(t): names[t] for t in range(len(counts))}},
            "link.dat": {"link type": {str(r): {"start": a, "end": b, "meaning": f"{names[a]}-{names[b]}"}
                                       for r, (a, b) in enumerate(edge_types)}}}
    if task == "nc":
        info["label.dat"] = {"node type": {"0": {str(k): f"class{k}" for k in range(c)}}}
    (out_dir / "info.dat").write_text(json.dumps(info, indent=4))
    return out_dir


def _write_links(path, blocks):
    with open(path, "w", encoding="utf-8") as f:
        for pairs, r in blocks:
            f.writelines(f"{h}\t{t}\t{r}\t1.0\n" for h, t in pairs.tolist())


# ----------------------------------------------------------------------------------------------------------
# Leaderboard submissions

def write_nc_submission(path, node_ids, node_type, predictions, multi_label):
    """NC leaderboard file: lines `node_id \\t\\t node_type \\t label[,label]` (official gen_file_for_evaluate).

    predictions: (M,) class ids, or (M, C) 0/1 indicators when multi_label. node_type: one int or (M,).
    """
    node_ids = np.asarray(node_ids)
    types = np.broadcast_to(np.asarray(node_type), node_ids.shape)
    predictions = np.asarray(predictions)
    if multi_label:
        text = [",".join(str(k) for k in np.flatnonzero(row)) for row in predictions]
    else:
        text = [str(int(k)) for k in predictions]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{v}\t\t{t}\t{lab}\n" for v, t, lab in zip(node_ids.tolist(), types.tolist(), text,
                                                                  strict=True))


def write_lp_submission(path, heads, tails, relation, scores):
    """LP leaderboard file: lines `head \\t tail \\t relation \\t confidence`; relation: one int or (M,)."""
    heads = np.asarray(heads)
    rels = np.broadcast_to(np.asarray(relation), heads.shape)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{h}\t{t}\t{r}\t{float(s)!r}\n" for h, t, r, s in
                     zip(heads.tolist(), np.asarray(tails).tolist(), rels.tolist(), np.asarray(scores).tolist(),
                         strict=True))
