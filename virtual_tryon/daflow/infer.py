"""Try a garment on your own photo with a trained checkpoint.

    PYTHONPATH=<repo>:<repo>/virtual_tryon python -m daflow.infer --checkpoint last.pt --person me.jpg \
        --cloth shirt.jpg --keypoints me_keypoints.json --parse me.png --out result.png

Inputs as the datasets ship them: an OpenPose JSON of the person (COCO-18 ``pose_keypoints`` or BODY_25
``pose_keypoints_2d``), and a human-parsing map with LIP label ids (PNG, mode L or P; e.g. from SCHP-LIP or
CIHP_PGN merged to LIP ids) from which the agnostic image is built, or a ready agnostic image (--agnostic).
Everything is resized to the checkpoint's training size; the result is written at that size.
`--checkpoint` takes a train.sh checkpoint or the released ``ckpt_viton.pt`` of OFA-Sys/DAFlow (a plain
SDAFNet_Tryon state_dict, also in the {state_dict, ...} / DataParallel forms): the latter runs at --height x
--width (default 256 x 192, the size it was trained at).
"""
import argparse

import cv2
import numpy as np
import torch
from PIL import Image

from common.checkpoint import load_checkpoint
from common.data.openpose import body25_to_coco18, read_openpose_json, render_skeleton
from common.data.tryon import agnostic_person, image_to_tensor, read_label_map, read_rgb
from common.errors import ConfigError, exit_on_user_error
from common.runtime import select_device

from .checkpoint import load_official_checkpoint
from .eval import load_model
from .evaluate import to_uint8


def tryon_arrays(model, cloth, person, keypoints, parse=None, agnostic=None, device="cpu"):
    """uint8 arrays at the model's size -> try-on uint8 (H, W, 3). keypoints are in `person`'s pixels."""
    h, w = person.shape[:2]
    if agnostic is None:
        agnostic = agnostic_person(person, parse, keypoints)
    pose = render_skeleton(keypoints, h, w, radius=max(1, round(4 * w / 192)), stick_width=max(1, round(4 * w / 192)))
    x = [image_to_tensor(a)[None].to(device) for a in (cloth, agnostic, pose)]
    with torch.no_grad():
        return to_uint8(model(*x, return_all=False)[-1])[0]


def load_any_checkpoint(path, device, official_size=(256, 192)):
    """A train.sh checkpoint (its own size) or an official SDAFNet_Tryon file -> (model in eval mode, (H, W))."""
    ckpt = load_checkpoint(path)
    if isinstance(ckpt, dict) and "config" in ckpt and "model" in ckpt:
        model, cfg = load_model(ckpt, device)
        return model, (cfg.height, cfg.width)
    # the official grid_sample warp, on every device (see the README: the backend choice for official weights)
    return load_official_checkpoint(path, "reference").to(device), tuple(official_size)


@exit_on_user_error
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("checkpoint", "person", "cloth", "keypoints", "out"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--parse", default="", help="LIP label-id PNG of the person (to build the agnostic image)")
    p.add_argument("--agnostic", default="", help="a ready agnostic image instead of --parse")
    p.add_argument("--height", type=int, default=256, help="input size for an official checkpoint")
    p.add_argument("--width", type=int, default=192, help="input size for an official checkpoint")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    if not (args.parse or args.agnostic):
        raise ConfigError("give --parse (LIP label ids) or --agnostic")
    device = select_device(args.device)
    model, size = load_any_checkpoint(args.checkpoint, device, (args.height, args.width))
    src_w, src_h = Image.open(args.person).size
    person, cloth = read_rgb(args.person, size), read_rgb(args.cloth, size)
    kps, flavour = read_openpose_json(args.keypoints)
    kps = (body25_to_coco18(kps) if flavour == "body25" else kps) * np.array([size[1] / src_w, size[0] / src_h, 1])
    parse = read_label_map(args.parse, size) if args.parse else None
    agnostic = read_rgb(args.agnostic, size) if args.agnostic else None
    out = tryon_arrays(model, cloth, person, kps, parse, agnostic, device)
    cv2.imwrite(args.out, out[..., ::-1])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
