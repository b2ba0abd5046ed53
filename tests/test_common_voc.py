"""common.data.voc: VOC XML reading and the COCO conversion (mmdet pascal_voc.py conventions), by hand."""
import json

import numpy as np
import pytest
from PIL import Image

from common.data.coco import CocoDetection, load_coco_json
from common.data.voc import STAC_VOC_CLASSES, read_voc_xml, voc_to_coco, write_voc_coco
from common.errors import DataError

XML = """<annotation>
  <folder>VOC2007</folder><filename>{name}.jpg</filename>
  <size><width>{w}</width><height>{h}</height><depth>3</depth></size>
  {objects}
</annotation>"""
OBJ = "<object><name>{cls}</name><pose>Left</pose><truncated>0</truncated>{difficult}" \
      "<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"


def write_devkit(root, year="2007"):
    """3 images: 000005 (a chair and a difficult person), 000007 (a car, no <difficult> tag), 000009 (empty)."""
    base = root / "VOCdevkit" / f"VOC{year}"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    specs = {
        "000005": (500, 375, [("chair", 0, (263, 211, 324, 339)), ("person", 1, (5, 1, 100, 200))]),
        "000007": (500, 333, [("car", None, (141, 50, 500, 330))]),
        "000009": (64, 48, []),
    }
    for name, (w, h, objs) in specs.items():
        objects = "".join(OBJ.format(cls=c, b=b, difficult="" if d is None else f"<difficult>{d}</difficult>")
                          for c, d, b in objs)
        (base / "Annotations" / f"{name}.xml").write_text(XML.format(name=name, w=w, h=h, objects=objects))
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(base / "JPEGImages" / f"{name}.jpg")
    (base / "ImageSets" / "Main" / "trainval.txt").write_text("000005\n000007\n\n000009\n")
    return base


def test_read_voc_xml(tmp_path):
    base = write_devkit(tmp_path)
    rec = read_voc_xml(base / "Annotations" / "000005.xml")
    assert rec["filename"] == "000005.jpg" and rec["width"] == 500 and rec["height"] == 375
    assert rec["objects"] == [{"name": "chair", "difficult": 0, "bbox": [263, 211, 324, 339]},
                              {"name": "person", "difficult": 1, "bbox": [5, 1, 100, 200]}]
    assert read_voc_xml(base / "Annotations" / "000007.xml")["objects"][0]["difficult"] == 0


def test_voc_to_coco_by_hand(tmp_path):
    write_devkit(tmp_path)
    coco = voc_to_coco(tmp_path, 2007, "trainval")
    assert [c["id"] for c in coco["categories"]] == list(range(1, 21))
    assert [c["name"] for c in coco["categories"]] == list(STAC_VOC_CLASSES)
    assert STAC_VOC_CLASSES[:3] == ("train", "car", "cat") and STAC_VOC_CLASSES[-1] == "dog"
    assert coco["images"] == [{"id": 0, "file_name": "000005.jpg", "width": 500, "height": 375},
                              {"id": 1, "file_name": "000007.jpg", "width": 500, "height": 333},
                              {"id": 2, "file_name": "000009.jpg", "width": 64, "height": 48}]
    chair, person, car = coco["annotations"]
    # VOC (263, 211, 324, 339), 1-based inclusive -> mmdet: -1 on every coordinate, w = xmax - xmin
    assert chair["bbox"] == [262, 210, 61, 128] and chair["area"] == 61 * 128
    assert chair["category_id"] == 4 and chair["iscrowd"] == 0 and chair["image_id"] == 0
    assert person["bbox"] == [4, 0, 95, 199] and person["iscrowd"] == 1 and person["category_id"] == 5
    assert car["bbox"] == [140, 49, 359, 280] and car["category_id"] == 2 and car["image_id"] == 1
    assert [a["id"] for a in coco["annotations"]] == [0, 1, 2]

    as_object = voc_to_coco(tmp_path / "VOCdevkit", "2007", "trainval", keep_difficult="object")
    assert as_object["annotations"][1]["iscrowd"] == 0
    dropped = voc_to_coco(tmp_path, 2007, "trainval", keep_difficult="drop")
    assert [a["category_id"] for a in dropped["annotations"]] == [4, 2]
    with pytest.raises(ValueError):
        voc_to_coco(tmp_path, 2007, "trainval", keep_difficult=True)


def test_written_json_reads_back_through_coco_detection(tmp_path):
    base = write_devkit(tmp_path)
    out = write_voc_coco(tmp_path, 2007, "trainval", base / "instances_trainval.json")
    assert load_coco_json(out)["annotations"][0]["bbox"] == [262, 210, 61, 128]
    ds = CocoDetection(out, base / "JPEGImages")
    assert ds.class_names == list(STAC_VOC_CLASSES) and ds.image_ids == [0, 1]  # 000009 has no object
    s = ds[0]
    np.testing.assert_array_equal(s["boxes"], [[262, 210, 323, 338]])
    assert s["labels"].tolist() == [3]  # chair is the 4th class
    np.testing.assert_array_equal(s["ignore_boxes"], [[4, 0, 99, 199]])  # the difficult person
    assert json.loads(out.read_text())["images"][2]["file_name"] == "000009.jpg"


def test_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="host.robots.ox.ac.uk") as e:
        voc_to_coco(tmp_path, 2007, "trainval")
    assert "VOC2007" in str(e.value)
    base = write_devkit(tmp_path)
    with pytest.raises(DataError, match="test.txt"):
        voc_to_coco(tmp_path, 2007, "test")
    (base / "Annotations" / "000007.xml").write_text("<annotation><size><width>3</width>")
    with pytest.raises(DataError, match="000007.xml"):
        voc_to_coco(tmp_path, 2007, "trainval")
    (base / "Annotations" / "000007.xml").write_text(XML.format(name="000007", w=5, h=5, objects=OBJ.format(
        cls="unicorn", difficult="", b=(1, 1, 2, 2))))
    with pytest.raises(DataError, match="unicorn"):
        voc_to_coco(tmp_path, 2007, "trainval")
    (base / "Annotations" / "000007.xml").write_text(XML.format(name="000007", w="wide", h=5, objects=""))
    with pytest.raises(DataError, match="000007.xml.*width"):
        read_voc_xml(base / "Annotations" / "000007.xml")
    (base / "Annotations" / "000005.xml").unlink()
    with pytest.raises(DataError, match="000005.xml"):
        voc_to_coco(tmp_path, 2007, "trainval")
