"""The RefCOCO path on real photographs: boxes of a real COCO export (Roboflow chess, 2048x1371 JPEGs) written in
the official RefCOCO TSV layout, read back, binned at the configs' 480 px and decoded back to pixels."""
import base64
import json

import pytest
from ofa_prompt.data import TaskDataset, read_tsv
from ofa_prompt.metrics import bins_to_box, box_iou, grounding_hits
from ofa_prompt.tokenizer import OFATokenizer


@pytest.mark.realdata
def test_real_photo_boxes_survive_the_official_binning_round_trip(tmp_path, real_data):
    split = real_data("coco_chess/test")
    coco = json.loads((split / "_annotations.coco.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    lines = []
    for image in coco["images"][:4]:
        blob = base64.urlsafe_b64encode((split / image["file_name"]).read_bytes()).decode()
        for a in [a for a in coco["annotations"] if a["image_id"] == image["id"]][:5]:
            x, y, w, h = a["bbox"]
            # official refcoco_*.tsv columns: uniq-id, image-id, text, region-coord, image (selected 0,4,2,3)
            lines.append("\t".join([str(a["id"]), str(image["id"]), names[a["category_id"]].replace("-", " "),
                                    f"{x},{y},{x + w},{y + h}", blob]))
    path = tmp_path / "refcoco_chess.tsv"
    path.write_text("\n".join(lines) + "\n")
    rows = read_tsv(path, "refcoco")
    bpe = OFATokenizer.train_official_files([r.fields[0] for r in rows] * 4 + ["which region does the text describe"],
                                            tmp_path / "bpe", vocab_size=200)
    tok = OFATokenizer.from_official(bpe, num_codes=4, num_bins=1000)
    data = TaskDataset(rows, "refcoco", tok, patch_size=480, max_image_size=512)
    boxes, truth = [], []
    for i in range(len(data)):
        s = data[i]
        assert s["image"].shape == (3, 480, 480)
        assert s["ratio"] == pytest.approx((480 / 2048, 480 / 1371))             # the real photo size
        boxes.append(bins_to_box(s["target"][:4], tok, s["ratio"], 512))
        truth.append(s["box"].tolist())
    assert len(boxes) >= 10 and grounding_hits(boxes, truth) == [1.0] * len(boxes)
    # quantisation: 512 / 999 px per bin at 480 px is about 2.2 px horizontally in the 2048 px original
    ious = [box_iou(b, t)[0] for b, t in zip(boxes, truth, strict=True)]
    assert min(ious) > 0.9, ious
    errors = [abs(p - q) for b, t in zip(boxes, truth, strict=True) for p, q in zip(b, t, strict=True)]
    assert max(errors) < 2048 / 480 * 512 / 999
