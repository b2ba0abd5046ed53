"""Write the state-dict key names and shapes of the checkpoint the official INO `main_VOS.py` saves.

    PYTHONPATH=/path/to/INO_VOS python vos/ino/tools/dump_official_keys.py /path/to/INO_VOS \
        vos/ino/tests/data/official_main_vos_keys.json

Builds the networks the way the official `vision_transformer.make_model` does (ViT-S/8, `img_size` 64,
`--multi_scale_layer 1` as `train_charades.sh` passes, DINOHead out_dim 4096, `norm_last_layer` True) with
the official classes, on the CPU: the student is wrapped in a data-parallel module (as `make_model` does
with DDP or DataParallel, which is what puts the `module.` prefix into `checkpoint.pth`), the teacher is
not (it is wrapped only when the model has batch norms). `save_dict['student']` / `['teacher']` of
`main_VOS.py` are these two state dicts. Nothing of the official code is copied here: it is imported from
the checkout on PYTHONPATH (the folder argument only names its commit), with its training-only imports
(tensorboardX, the data set code) stubbed.
"""
import argparse
import json
import subprocess
import sys
import types
from pathlib import Path


def compact_json(obj):
    """JSON with one state-dict key per line."""
    lines = ["{"]
    for i, (k, v) in enumerate(obj.items()):
        end = "," if i + 1 < len(obj) else ""
        if isinstance(v, dict):
            items = [f"  {json.dumps(name)}: {json.dumps(shape)}" for name, shape in v.items()]
            lines += [f" {json.dumps(k)}: {{", ",\n".join(items), f" }}{end}"]
        else:
            lines.append(f" {json.dumps(k)}: {json.dumps(v)}{end}")
    return "\n".join(lines + ["}"]) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("official", help="the checkout of github.com/pansanity666/INO_VOS that is on PYTHONPATH")
    ap.add_argument("out", help="JSON file to write")
    args = ap.parse_args()
    for name in ("tensorboardX", "dataset"):  # imported by main_VOS / utils but not needed to build the model
        sys.modules.setdefault(name, types.ModuleType(name))
    import torch
    import torch.nn as nn
    import utils  # noqa: F401  (official utils.py)
    import vision_transformer as vits  # official vision_transformer.py

    opts = argparse.Namespace(arch="vit_small", patch_size=8, img_size=64, drop_path_rate=0.1, out_dim=4096,
                              use_bn_in_head=False, norm_last_layer=True, nlayers=3, multi_scale_layer=[1],
                              remark="")
    torch.manual_seed(0)
    student = vits.vit_small(img_size=[opts.img_size, opts.img_size], patch_size=opts.patch_size,
                             drop_path_rate=opts.drop_path_rate)
    teacher = vits.vit_small(img_size=[opts.img_size, opts.img_size], patch_size=opts.patch_size)
    dim = student.embed_dim
    heads_s = utils.get_repeat_module_list(opts, vits.DINOHead, len(opts.multi_scale_layer), dim, opts.out_dim,
                                           use_bn=opts.use_bn_in_head, norm_last_layer=opts.norm_last_layer,
                                           nlayers=opts.nlayers)
    heads_t = utils.get_repeat_module_list(opts, vits.DINOHead, len(opts.multi_scale_layer), dim, opts.out_dim,
                                           opts.use_bn_in_head, nlayers=opts.nlayers)
    student = nn.DataParallel(vits.MultiCropWrapper(opts, student, heads_s))  # DDP gives the same `module.` keys
    teacher = vits.MultiCropWrapper(opts, teacher, heads_t)
    commit = subprocess.run(["git", "-C", args.official, "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown (not a git checkout)"
    out = {
        "source": "github.com/pansanity666/INO_VOS main_VOS.py save_dict['student'] / ['teacher'] "
                  "(vision_transformer.make_model, vit_small, patch 8, img_size 64, multi_scale_layer [1])",
        "commit": commit,
        "made_by": "vos/ino/tools/dump_official_keys.py",
        "torch": torch.__version__,
        "student": {k: list(v.shape) for k, v in student.state_dict().items()},
        "teacher": {k: list(v.shape) for k, v in teacher.state_dict().items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(compact_json(out))
    print(f"{len(out['student'])} student and {len(out['teacher'])} teacher keys -> {args.out}")


if __name__ == "__main__":
    main()
