"""Recompute the reference numbers in tests/data/caption_reference.json with pycocoevalcap (the scorers OFA's
run_scripts/caption/coco_eval.py uses; in requirements.txt):

    python tools/caption_reference.py [--write]
"""
import json
import sys
from pathlib import Path

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "caption_reference.json"

if __name__ == "__main__":
    data = json.loads(DATA.read_text())
    gts = dict(enumerate(data["references"]))
    res = {i: [h] for i, h in enumerate(data["hypotheses"])}
    data["bleu_1_4"] = [float(x) for x in Bleu(4).compute_score(gts, res, verbose=0)[0]]
    score, per_image = Cider().compute_score(gts, res)
    data["cider_d"], data["cider_d_per_image"] = float(score), [float(s) for s in per_image]
    print(json.dumps({k: data[k] for k in ("bleu_1_4", "cider_d", "cider_d_per_image")}, indent=1))
    if "--write" in sys.argv:
        DATA.write_text(json.dumps(data, indent=1) + "\n")
