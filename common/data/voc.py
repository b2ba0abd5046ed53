"""Pascal VOC XML annotations and their conversion to COCO instances JSON for the SSOD protocol.

Layout (the official tarballs VOCtrainval_06-Nov-2007.tar, VOCtest_06-Nov-2007.tar, VOCtrainval_11-May-2012.tar):

    VOCdevkit/VOC2007/Annotations/<name>.xml      one XML per image
    VOCdevkit/VOC2007/JPEGImages/<name>.jpg
    VOCdevkit/VOC2007/ImageSets/Main/<split>.txt  one image name per line (train, val, trainval, test)

SSOD protocol (STAC, ConsistentTeacher `configs/consistent-teacher/consistent_teacher_r50_fpn_voc0712_72k.py`):
VOC07 trainval labelled, VOC12 trainval unlabelled, VOC07 test for COCO-style AP50 / AP50:95, all read as COCO
JSON (`VOC2007/instances_trainval.json`, `VOC2007/instances_test.json`, `VOC2012/instances_trainval.json`).

Conversion (`voc_to_coco`), following mmdet's `tools/dataset_converters/pascal_voc.py` (parse_xml +
cvt_to_coco_json): VOC boxes are 1-based inclusive integers, so all four coordinates get -1 and the COCO box is
[xmin - 1, ymin - 1, xmax - xmin, ymax - ymin] (no +1 on w/h: mmdet 2.x boxes are continuous, x2 = x + w),
area = w * h. `difficult` objects become `iscrowd=1` (mmdet's converter), i.e. ignore regions for training
(CocoDetection puts them in `ignore_boxes`) and for COCOeval, the closest to VOC's "difficult is ignored".
STAC's instructions point to a different converter (Gemfield's pascal_voc_xml2json: x = xmin without -1 and
`difficult` not read, so a plain object); `keep_difficult="object"` gives that treatment of difficult boxes.
Category ids are 1..20 in `STAC_VOC_CLASSES` order, so labels follow the class order of the official config
(STAC's own JSON uses other ids for the same order: motorbike=1, dog=2, ...; see tools/voc_order.py).
Image ids are the running index of the image in the split list (0-based), as mmdet's converter.
"""
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from ..errors import DataError

# The class order of the official VOC config (`CLASSES`, printed by tools/voc_order.py from STAC's JSON).
STAC_VOC_CLASSES = ("train", "car", "cat", "chair", "person", "diningtable", "sofa", "horse", "bicycle", "bird",
                    "cow", "aeroplane", "tvmonitor", "bottle", "pottedplant", "boat", "sheep", "bus", "motorbike",
                    "dog")
VOC_HINT = ("get Pascal VOC from http://host.robots.ox.ac.uk/pascal/VOC/ (VOCtrainval_06-Nov-2007.tar, "
            "VOCtest_06-Nov-2007.tar, VOCtrainval_11-May-2012.tar) and untar them into one folder holding VOCdevkit/")
DIFFICULT_CHOICES = ("crowd", "object", "drop")


def _text(node, tag, path):
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DataError(path, f"missing <{tag}> in <{node.tag}>")
    return child.text.strip()


def _int(node, tag, path):
    text = _text(node, tag, path)
    try:
        return int(float(text))
    except ValueError:
        raise DataError(path, f"<{tag}> = {text!r} in <{node.tag}> is not a number") from None


def read_voc_xml(path):
    """One VOC annotation XML -> {"filename", "width", "height", "objects": [{"name", "difficult", "bbox"}]}.

    `bbox` is [xmin, ymin, xmax, ymax] as written in the file (1-based inclusive pixel indices);
    `difficult` is 0 when the tag is absent. A missing file or malformed XML raises DataError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "VOC annotation XML not found", hint=VOC_HINT)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DataError(path, f"malformed XML ({e})") from None
    if root.tag != "annotation":
        raise DataError(path, f"expected an <annotation> root element, got <{root.tag}>")
    size = root.find("size")
    if size is None:
        raise DataError(path, "missing <size>")
    out = {"filename": _text(root, "filename", path), "width": _int(size, "width", path),
           "height": _int(size, "height", path), "objects": []}
    for obj in root.findall("object"):
        box = obj.find("bndbox")
        if box is None:
            raise DataError(path, "an <object> without <bndbox>")
        difficult = obj.find("difficult")
        out["objects"].append({
            "name": _text(obj, "name", path),
            "difficult": 0 if difficult is None or not (difficult.text or "").strip() else _int(obj, "difficult", path),
            "bbox": [_int(box, t, path) for t in ("xmin", "ymin", "xmax", "ymax")],
        })
    return out


def voc_to_coco(voc_root, year, split, class_order=STAC_VOC_CLASSES, keep_difficult="crowd"):
    """VOCdevkit/VOC<year> `split` -> a COCO instances dict (see the module docstring for the conventions).

    Args:
        voc_root: the folder holding VOCdevkit/ (or VOCdevkit itself).
        class_order: class names; category id k+1 is class_order[k].
        keep_difficult: 'crowd' (mmdet converter: iscrowd=1, an ignore region), 'object' (a plain box, as
            the converter STAC points to) or 'drop'.
    `file_name` is the JPEG name relative to VOC<year>/JPEGImages.
    """
    if keep_difficult not in DIFFICULT_CHOICES:
        raise ValueError(f"keep_difficult must be one of {DIFFICULT_CHOICES}, got {keep_difficult!r}")
    voc_root = Path(voc_root)
    devkit = voc_root if voc_root.name == "VOCdevkit" else voc_root / "VOCdevkit"
    year_dir = devkit / f"VOC{year}"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        if not (year_dir / sub).is_dir():
            raise DataError(year_dir / sub, "VOC folder not found (expected VOCdevkit/VOC<year>/{Annotations, "
                                            "JPEGImages, ImageSets/Main})", hint=VOC_HINT)
    list_file = year_dir / "ImageSets" / "Main" / f"{split}.txt"
    if not list_file.is_file():
        raise DataError(list_file, "image list of this split not found", hint=VOC_HINT)
    names = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
    cat_id = {name: k + 1 for k, name in enumerate(class_order)}
    coco = {"images": [], "annotations": [],
            "categories": [{"supercategory": "none", "id": k + 1, "name": n} for k, n in enumerate(class_order)]}
    for image_id, name in enumerate(names):
        xml_path = year_dir / "Annotations" / f"{name}.xml"
        rec = read_voc_xml(xml_path)
        coco["images"].append({"id": image_id, "file_name": f"{name}.jpg", "width": rec["width"],
                               "height": rec["height"]})
        for obj in rec["objects"]:
            if obj["name"] not in cat_id:
                raise DataError(xml_path, f"object class {obj['name']!r} is not one of {list(class_order)}")
            if obj["difficult"] and keep_difficult == "drop":
                continue
            xmin, ymin, xmax, ymax = obj["bbox"]
            w, h = xmax - xmin, ymax - ymin
            coco["annotations"].append({
                "id": len(coco["annotations"]), "image_id": image_id, "category_id": cat_id[obj["name"]],
                "bbox": [xmin - 1, ymin - 1, w, h], "area": w * h,
                "iscrowd": int(bool(obj["difficult"]) and keep_difficult == "crowd"),
                "segmentation": [[xmin - 1, ymin - 1, xmin - 1, ymax - 1, xmax - 1, ymax - 1, xmax - 1, ymin - 1]],
            })
    return coco


def write_voc_coco(voc_root, year, split, out_path, **kwargs):
    """`voc_to_coco(voc_root, year, split, **kwargs)` written to `out_path` (e.g. VOC2007/instances_test.json);
    returns `out_path` as a Path. Read it with CocoDetection(out_path, VOCdevkit/VOC<year>/JPEGImages)."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(voc_to_coco(voc_root, year, split, **kwargs), f)
    return out_path
