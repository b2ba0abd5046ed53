"""Reproduce the official-tool numbers pinned in `tests/test_common_davis.py`
(`test_real_davis2016_sequences_score_against_themselves_and_a_shift`) with the official
`davis2017-evaluation` (github.com/davisvideochallenge/davis2017-evaluation, commit ac7c43f), not with our
metric code.

    pip install --no-deps --target /tmp/davisdeps scikit-image lazy_loader imageio tifffile   # disk() only
    PYTHONPATH=/path/to/davis2017-evaluation:/tmp/davisdeps python vos/ino/tools/davis_official_roll20.py \
        --davis shared/data/davis2016/DAVIS

What it does: the real DAVIS-2016 blackswan and dog 480p masks (grayscale 0/255) are rewritten as DAVIS-2017
palette PNGs with object id 1 (the official 2017 tool would read a 2016 mask's 255 as void) in a temporary
DAVIS-2017 folder (frames linked, `ImageSets/2017/val.txt`); the predictions are every mask shifted by 20 px
to the right with `np.roll` (wrapping around), written as palette PNGs; then
`DAVISEvaluation(root, task="semi-supervised", gt_set="val").evaluate(results)` scores them and the global
numbers are formed as `evaluation_method.py` does ((J-Mean + F-Mean) / 2 etc.). Prints the dict the test
pins (full float precision) and the two per-object values it checks. Our code is not imported: the
PNGs are written with Pillow directly.
"""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SEQUENCES = ("blackswan", "dog")
SHIFT = 20  # pixels, along the width (axis 2 of the (T, H, W) stack)


def palette():
    """The DAVIS / PASCAL VOC colour map (only its first entries matter here)."""
    pal = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal.reshape(-1).tolist()


def write_ids(path, ids):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    img.putpalette(palette())
    img.save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--davis", required=True, help="the DAVIS-2016 sample folder (JPEGImages/480p, Annotations/480p)")
    args = ap.parse_args()
    from davis2017.evaluation import DAVISEvaluation  # the official package, from PYTHONPATH

    src = Path(args.davis).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        root, results = Path(tmp) / "DAVIS", Path(tmp) / "results"
        for seq in SEQUENCES:
            (root / "JPEGImages" / "480p").mkdir(parents=True, exist_ok=True)
            (root / "JPEGImages" / "480p" / seq).symlink_to(src / "JPEGImages" / "480p" / seq)
            names = sorted(p.stem for p in (src / "Annotations" / "480p" / seq).glob("*.png"))
            gt = np.stack([(np.array(Image.open(src / "Annotations" / "480p" / seq / f"{n}.png").convert("L")) > 127)
                           .astype(np.uint8) for n in names])  # (T, H, W) ids {0, 1}
            moved = np.roll(gt, SHIFT, axis=2)
            for t, n in enumerate(names):
                write_ids(root / "Annotations" / "480p" / seq / f"{n}.png", gt[t])
                write_ids(results / seq / f"{n}.png", moved[t])
        (root / "ImageSets" / "2017").mkdir(parents=True)
        (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(SEQUENCES) + "\n")
        res = DAVISEvaluation(davis_root=str(root), task="semi-supervised", gt_set="val").evaluate(str(results))
    J, F = res["J"], res["F"]
    official = dict(jf_mean=(np.mean(J["M"]) + np.mean(F["M"])) / 2.0, j_mean=np.mean(J["M"]),
                    j_recall=np.mean(J["R"]), j_decay=np.mean(J["D"]), f_mean=np.mean(F["M"]),
                    f_recall=np.mean(F["R"]), f_decay=np.mean(F["D"]))
    print(json.dumps({k: float(v) for k, v in official.items()}))
    print(json.dumps({"dog_1 f_mean": float(F["M_per_object"]["dog_1"]),
                      "blackswan_1 j_decay": float(J["D"][list(J["M_per_object"]).index("blackswan_1")])}))


if __name__ == "__main__":
    main()
