"""The zoo's teacher loader against the official code's own state-dict layout (issue 19, item 3).

`common/models/official/repdistiller_cifar100_state_dicts.tsv` lists every state-dict name and shape of the
CIFAR-100 models of HobbitLong/RepDistiller (commit in the file's header), dumped by instantiating the
official model classes; nothing in it comes from our code. Each test builds a teacher file the way
RepDistiller's train_teacher.py saves one ({'epoch', 'model', 'accuracy', 'optimizer'}) from those names and
shapes, with random values, and loads it through `common.models.load_teacher` (strict).
"""
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from common.errors import DataError
from common.models import build_model, load_teacher

KEY_FILE = (Path(__file__).resolve().parents[1] / "common" / "models" / "official"
            / "repdistiller_cifar100_state_dicts.tsv")


def official_layouts():
    layouts = defaultdict(dict)
    for line in KEY_FILE.read_text().splitlines():
        if line.startswith("#"):
            continue
        name, key, shape = line.split("\t")
        layouts[name][key] = tuple(int(s) for s in shape.split("x")) if shape else ()
    return dict(layouts)


LAYOUTS = official_layouts()


def official_file(path, layout, seed=0):
    """A RepDistiller-style teacher file: random tensors under the official names and shapes."""
    g = torch.Generator().manual_seed(seed)
    state = {k: (torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(shape, generator=g))
             for k, shape in layout.items()}
    torch.save({"epoch": 240, "model": state, "accuracy": 0.0, "optimizer": {}}, path)
    return state


def test_the_key_file_covers_the_zoo():
    assert KEY_FILE.read_text().startswith("# State-dict names") and "b84f547" in KEY_FILE.read_text()[:400]
    assert len(LAYOUTS) == 18 and sum(map(len, LAYOUTS.values())) > 3000


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_official_teacher_file_loads_into_the_zoo(tmp_path, name):
    layout = LAYOUTS[name]
    ours = {k: tuple(v.shape) for k, v in build_model(name, 100).state_dict().items()}
    assert ours == layout  # same names, same shapes, nothing extra, nothing missing
    state = official_file(tmp_path / "ckpt_epoch_240.pth", layout)
    model = load_teacher(name, tmp_path / "ckpt_epoch_240.pth", 100)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_a_file_missing_an_official_key_is_refused(tmp_path):
    layout = dict(LAYOUTS["resnet8x4"])
    layout.pop("layer3.0.bn2.running_var")
    official_file(tmp_path / "t.pth", layout)
    with pytest.raises(DataError, match="layer3.0.bn2.running_var") as e:
        load_teacher("resnet8x4", tmp_path / "t.pth", 100)
    assert str(tmp_path / "t.pth") in str(e.value)
