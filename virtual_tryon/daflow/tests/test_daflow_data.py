"""DAFlow data paths: both VITON-HD folder-name sets, and eval.sh on the unpaired list only."""
import shutil
from pathlib import Path

import torch
from daflow.eval import main as eval_main
from daflow.train import TrainConfig, build_model

from common.checkpoint import save_checkpoint, training_state
from common.config import config_from_dict, config_to_dict, load_yaml
from common.data.tryon import TryOnDataset, write_synthetic_tryon

HERE = Path(__file__).resolve().parents[1]


def test_viton_hd_reads_the_original_release_folder_names(tmp_path):
    """The first VITON-HD release names its folders image-parse / openpose-json; zalando-hd-resized uses
    image-parse-v3 / openpose_json. Both read the same samples."""
    new = write_synthetic_tryon(tmp_path / "new", num_train=2, num_test=2, seed=3)
    old = tmp_path / "old"
    shutil.copytree(new, old)
    for split in ("train", "test"):
        (old / split / "image-parse-v3").rename(old / split / "image-parse")
        (old / split / "openpose_json").rename(old / split / "openpose-json")
    a, b = TryOnDataset(new, "viton_hd", "test", "paired")[1], TryOnDataset(old, "viton_hd", "test", "paired")[1]
    for key in ("cloth", "person", "agnostic", "pose"):
        assert torch.equal(a[key], b[key]), key


def test_eval_runs_the_unpaired_list_alone(tmp_path):
    cfg = config_from_dict(TrainConfig, load_yaml(HERE / "configs" / "smoke.yaml"))
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", training_state(build_model(cfg), config=config_to_dict(cfg),
                                                         data_dir=str(tmp_path / "data")))
    data = write_synthetic_tryon(tmp_path / "data", num_train=1, num_test=3)
    for p in (data / "test" / "image").iterdir():  # no person's own garment: a paired pass could not run
        if p.name != "00000_00.jpg":
            (data / "test" / "cloth" / p.name).unlink()
    (data / "test_pairs.txt").write_text("00001_00.jpg 00000_00.jpg\n00002_00.jpg 00000_00.jpg\n")
    eval_main(["--checkpoint", str(tmp_path / "m.pt"), "--paired", "false", "--out_dir", str(tmp_path / "eval"),
               "--progress", "false"])
    assert sorted(p.name for p in (tmp_path / "eval" / "unpaired" / "tryon").iterdir()) == \
        ["00001_00__00000_00.png", "00002_00__00000_00.png"]
    assert not (tmp_path / "eval" / "tryon").exists()


def test_official_weights_run_with_the_official_grid_sample_warp_on_every_device(tmp_path, monkeypatch):
    """eval.sh --official_checkpoint and infer.py use the reference (grid_sample) DAWarp of the official sdafnet.py
    by default, also on CUDA; deform_conv stays available (--official_warp_backend)."""
    import daflow.infer as infer
    from daflow.eval import EvalConfig

    from common.config import parse_config
    assert parse_config(EvalConfig, []).official_warp_backend == "reference"
    assert parse_config(EvalConfig, ["--official_warp_backend", "deform_conv"]).official_warp_backend == "deform_conv"
    seen = []
    monkeypatch.setattr(infer, "load_official_checkpoint", lambda path, backend: seen.append(backend) or
                        torch.nn.Identity())
    torch.save({"dafnet.x": torch.zeros(1)}, tmp_path / "ckpt_viton.pt")
    infer.load_any_checkpoint(tmp_path / "ckpt_viton.pt", "cuda")  # no CUDA needed: the loader is replaced
    assert seen == ["reference"]
