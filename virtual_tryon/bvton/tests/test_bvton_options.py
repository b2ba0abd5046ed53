"""Every named option of the README's assumptions table that switches a part off or changes it is live: set to
another value, it changes what is computed (a loss term, a module, a network output, a pseudo-pair sample, the
data sources or the learning rate), so that a dead option cannot pass.

One row per option: (option, other value, probe). A probe computes the same thing under the default config and
under the config with that one option changed, on the same generated batch and the same weights (the default
model's weights, perturbed so that the zero-initialised residual flows and heads are not trivially zero, are
loaded into the other model), and the row asserts that the two differ. Options that switch a term off also
assert that the term is gone."""
import numpy as np
import pytest
import torch
from bvton.data import PseudoPairDataset, build_sources
from bvton.losses import VGGPerceptual
from bvton.synthetic import write_synthetic_bvton
from bvton.train import (
    FlowStage,
    MaskStage,
    SynthStage,
    TrainConfig,
    build_discriminator,
    build_model,
    make_scheduler,
)

H, W = 64, 48


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_synthetic_bvton(tmp_path_factory.mktemp("bvton_options"), num_train=2, num_test=1, num_unpaired=1,
                                 height=H, width=W, seed=7)


def config(root, **kw):
    return TrainConfig(**{"height": H, "width": W, "model_size": "tiny", "pretrained_losses": False,
                          "num_workers": 0, "dataset": "generated", "data_root": str(root / "paired"),
                          "unpaired_root": str(root / "unpaired"), **kw})


def samples(cfg):
    """The 2 paired + 1 unpaired pseudo pairs of the generated folder, stacked into one batch."""
    paired, unpaired = build_sources(cfg, "train")
    ds = PseudoPairDataset(paired, unpaired, (H, W), cfg)
    items = [ds[i] for i in range(len(ds))]
    return {k: torch.stack([it[k] for it in items]) for k, v in items[0].items() if torch.is_tensor(v)}


def stage_out(cfg, stage, batch, state, vgg):
    """(loss, terms, extra) of one stage's training module on `batch`, with the weights `state` (strict=False: an
    ablation may drop a module, e.g. the fusion head). The VGG is shared, the discriminator seeded: both equal."""
    model = build_model(cfg)
    model.load_state_dict(state, strict=False)
    torch.manual_seed(2)
    disc = build_discriminator(cfg)
    module = {"flow": lambda: FlowStage(model, cfg, vgg), "mask": lambda: MaskStage(model, cfg),
              "synth": lambda: SynthStage(model, cfg, vgg, disc)}[stage]()
    with torch.no_grad():
        out = module(batch)
        extra = {"model": model, "disc": disc}
        if stage == "synth":
            extra["inputs"] = module.inputs(batch)
    return float(out[0]), out[1], extra


# (option, other value, stage probed): a loss term, a module or a network output differs
STAGE_ROWS = [
    ("composition", "fixed", "flow"),
    ("max_residual", 0.05, "flow"),
    ("lambda_flow_vgg", 0.0, "flow"),
    ("lambda_shape", 0.0, "flow"),
    ("hem_start", 0.5, "flow"),
    ("hem_weight", 1.0, "flow"),
    ("lambda_smooth", 0.0, "flow"),
    ("smooth_torso_mult", 1.0, "flow"),
    ("layout_type", "flat", "mask"),
    ("lambda_ce", 0.0, "mask"),
    ("lambda_layer_bce", 0.0, "mask"),
    ("lambda_shape", 0.0, "mask"),
    ("lambda_smooth", 0.0, "mask"),
    ("synth_input", "aligned", "synth"),
    ("predicted_layout_prob", 0.0, "synth"),
    ("lambda_l1", 0.0, "synth"),
    ("lambda_vgg", 0.0, "synth"),
    ("lambda_gan", 0.0, "synth"),
    ("lambda_fm", 0.0, "synth"),
]
# the term each zero weight switches off (absent from the terms, or exactly 0)
SWITCHED_OFF = {("lambda_flow_vgg", "flow"): "vgg", ("lambda_shape", "flow"): "shape",
                ("lambda_smooth", "flow"): "smooth", ("lambda_ce", "mask"): "ce",
                ("lambda_layer_bce", "mask"): "layer_bce", ("lambda_shape", "mask"): "warp_shape",
                ("lambda_smooth", "mask"): "warp_smooth", ("lambda_l1", "synth"): "l1", ("lambda_vgg", "synth"): "vgg",
                ("lambda_gan", "synth"): "gan", ("lambda_fm", "synth"): "fm"}


@pytest.fixture(scope="module")
def base(root):
    """The default config (paper loss weights, tiny networks), its batch, perturbed default weights, a random VGG
    and each stage's output under the default config."""
    cfg = config(root)
    batch = samples(cfg)
    batch["use_proxy"] = torch.tensor([1.0, 0.0, 1.0])  # both garment sources in the mask stage
    batch["use_predicted_layout"] = torch.ones(3)  # the predicted layout is used where the option allows it
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    torch.manual_seed(1)
    vgg = VGGPerceptual(pretrained=False)
    defaults = {stage: stage_out(cfg, stage, batch, model.state_dict(), vgg) for stage in ("flow", "mask", "synth")}
    return cfg, batch, model.state_dict(), vgg, defaults


@pytest.mark.parametrize("option, value, stage", STAGE_ROWS, ids=[f"{s}-{o}={v}" for o, v, s in STAGE_ROWS])
def test_option_changes_the_stage_computation(root, base, option, value, stage):
    cfg, batch, state, vgg, defaults = base
    assert getattr(cfg, option) != value
    loss0, terms0, extra0 = defaults[stage]
    loss1, terms1, extra1 = stage_out(config(root, **{option: value}), stage, batch, state, vgg)
    assert loss0 != pytest.approx(loss1, rel=1e-6, abs=1e-9), (terms0, terms1)
    off = SWITCHED_OFF.get((option, stage))
    if off is not None:
        assert terms0[off] != 0 and terms1.get(off, 0.0) == 0.0, (terms0, terms1)
    if option == "composition":  # the fixed order has no fusion head, and the proxy itself changes
        assert extra0["model"].canonicalizer.fusion is not None and extra1["model"].canonicalizer.fusion is None
    if option == "max_residual":
        assert extra1["model"].canonicalizer.max_residual == value
    if option == "layout_type":
        logits = torch.randn(1, 9, 4, 3)
        assert not torch.allclose(extra0["model"].mask_generator.log_probs(logits),
                                  extra1["model"].mask_generator.log_probs(logits))
    if option == "lambda_gan":
        assert extra0["disc"] is not None and extra1["disc"] is None
    if option == "synth_input":  # the synthesizer's garment: the misaligned pseudo input vs the on-model garment
        assert torch.equal(extra0["inputs"][1], batch["misaligned"]) and torch.equal(extra1["inputs"][1], batch["c_on"])
    if option == "predicted_layout_prob":  # 0: the true layout even where a sample asks for the predicted one
        true = torch.nn.functional.one_hot(batch["layers"], 9).permute(0, 3, 1, 2).float()
        assert torch.equal(extra1["inputs"][0], true) and not torch.equal(extra0["inputs"][0], true)


# (option, other value, extra options for both configs): the pseudo-pair batch differs
DATA_ROWS = [
    ("proxy_prob", 0.0, {}),
    ("hole_prob", 0.0, {}),
    ("predicted_layout_prob", 1.0, {}),
    ("torso_dilate", 0.6, {}),
    ("heatmap_sigma", 300.0, {}),
    ("global_rotate", 0.0, {}),
    ("global_scale", 0.0, {}),
    ("global_stretch", 0.0, {}),
    ("global_shift", 0.0, {}),
    ("part_rotate", 0.0, {}),
    ("part_shift", 0.0, {}),
    ("elastic_sigma", 0.0, {}),
    ("mask_jitter_p", 1.0, {"mask_jitter_px": 300.0}),
    ("mask_jitter_px", 300.0, {"mask_jitter_p": 1.0}),
]


@pytest.mark.parametrize("option, value, common", DATA_ROWS, ids=[f"{o}={v}" for o, v, _ in DATA_ROWS])
def test_option_changes_the_pseudo_pairs(root, option, value, common):
    a, b = samples(config(root, **common)), samples(config(root, **common, **{option: value}))
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed, option
    expect = {"proxy_prob": {"use_proxy"}, "hole_prob": {"hole"}, "predicted_layout_prob": {"use_predicted_layout"},
              "torso_dilate": {"parts"}, "heatmap_sigma": {"pose"}}.get(option, {"misaligned", "misaligned_mask"})
    assert expect <= changed, (option, changed)
    if option == "proxy_prob":  # paired samples never use their proxy; the unpaired photo always does
        assert b["use_proxy"].tolist() == [0.0, 0.0, 1.0]
    if option == "hole_prob":
        assert a["hole"].sum() > 0 and b["hole"].sum() == 0
    if option == "predicted_layout_prob":
        assert b["use_predicted_layout"].tolist() == [1.0, 1.0, 1.0]


def test_data_source_and_schedule_options(root):
    paired, unpaired = build_sources(config(root), "train")
    assert paired is not None and unpaired is not None
    assert build_sources(config(root, use_unpaired=False), "train")[1] is None
    assert build_sources(config(root, use_paired=False), "train")[0] is None
    assert build_sources(config(root, use_paired=False), "test")[0] is not None  # the test list is always read

    def lrs(cfg):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = make_scheduler(opt, cfg, 4)
        out = []
        for _ in range(4):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    assert lrs(config(root)) == [1.0, 1.0, 1.0, 0.5]  # linear_half: constant, then linear to 0 over the last half
    assert lrs(config(root, lr_schedule="constant")) == [1.0] * 4
    assert np.isclose(config(root).lr_flow, 5e-5)
