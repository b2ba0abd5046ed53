"""Train BVTON stage by stage: the canonicalizing flow, the layered mask generator (+ forward warper), the
unpaired synthesizer.

    bash train.sh --config configs/viton_hd_1024_flow.yaml  --out_dir runs/bvton/hd
    bash train.sh --config configs/viton_hd_1024_mask.yaml  --out_dir runs/bvton/hd
    bash train.sh --config configs/viton_hd_1024_synth.yaml --out_dir runs/bvton/hd
    bash train.sh --config configs/smoke.yaml               # stage: all, the three in one run

A stage reads the weights of the stages before it from `--init_checkpoint`, else from
`<out_dir>/checkpoints/<previous stage>.pt`, and writes `checkpoints/<stage>.pt` (every module's weights) when it
ends; `checkpoints/last.pt` is the resumable state (stage, epoch, optimisers, RNG). Every recipe number is an
[assumption] of the research note (the paper's method sections could not be read): see the README's table.
At the end the paired test list is tried on end to end and scored into metrics.json (test_* keys), with the first
and last epoch's mean loss of every stage that ran.
"""
import dataclasses
from pathlib import Path

import torch
from torch import nn

from common.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from common.config import RunConfig, config_to_dict, option, parse_config
from common.data.tryon import DRESSCODE_CATEGORIES, LAYOUTS
from common.distributed import cleanup_distributed, distributed_sampler, init_distributed, wrap_ddp
from common.errors import ConfigError, exit_on_user_error
from common.rundir import Run, check_finite
from common.runtime import autocast, seed_everything

from .data import PseudoPairDataset, build_sources
from .evaluate import paired_metrics, run_bvton
from .losses import VGGPerceptual, feature_matching, flow_loss, lsgan, mask_stage_loss
from .model import BVTON, MODEL_WIDTHS, NUM_LAYERS, WHITE, PatchDiscriminator

STAGES = ("flow", "mask", "synth")


@dataclasses.dataclass
class TrainConfig(RunConfig):
    stage: str = option("all", "which module to train: flow (canonicalizing flow), mask (layered mask generator "
                        "+ forward warper), synth (synthesizer), all (the three in order)", choices=STAGES + ("all",))
    init_checkpoint: str = option("", "weights of the earlier stages (default <out_dir>/checkpoints/<prev>.pt)")
    dataset: str = option("zalando-hd-resized", "folder under $DATA_ROOT; 'synthetic' generates data in the run dir")
    layout: str = option("viton_hd", "paired layout (daflow has no parse/keypoints: not usable)", choices=LAYOUTS)
    data_root: str = option("", "paired dataset folder (default $DATA_ROOT/<dataset>)")
    unpaired_root: str = option("", "unpaired photo folder (image/, parsing/, keypoints/); empty: none")
    category: str = option("auto", "layout dresscode: category", choices=("auto",) + DRESSCODE_CATEGORIES)
    use_paired: bool = option(True, "train on the paired train list (the flow stage needs it)")
    use_unpaired: bool = option(True, "add the unpaired photos to the mask and synth stages")
    height: int = option(1024, "image height")
    width: int = option(768, "image width")
    model_size: str = option("paper", "paper or tiny (CPU smoke)", choices=tuple(MODEL_WIDTHS))
    composition: str = option("softmax", "part fusion of the canonical proxy: softmax (GP-VTON-style, note "
                              "default) or fixed (torso, then sleeves on top)", choices=("softmax", "fixed"))
    layout_type: str = option("layered", "layered (sigmoid layers, over-compositing) or flat (softmax; ablation)",
                              choices=("layered", "flat"))
    max_residual: float = option(0.25, "bound of the dense residual flow, normalized units")
    synth_input: str = option("misaligned", "synthesizer garment input in training: misaligned (BVTON) or "
                              "aligned (the on-model garment as is; ablation)", choices=("misaligned", "aligned"))
    batch_size: int = option(8, "global batch size (split over ranks)")
    num_workers: int = option(4, "data loader workers")
    epochs_flow: int = option(100, "epochs of the flow stage (on the paired list)")
    epochs_mask: int = option(40, "epochs of the mask stage")
    epochs_synth: int = option(40, "epochs of the synth stage")
    lr_flow: float = option(5e-5, "Adam lr, canonicalizing flow")
    lr_mask: float = option(2e-4, "Adam lr, mask generator and warper")
    lr_synth: float = option(1e-4, "Adam lr, synthesizer (TTUR generator)")
    lr_disc: float = option(4e-4, "Adam lr, discriminator (TTUR)")
    lr_schedule: str = option("linear_half", "linear_half: constant, then linear to 0 over the last half; "
                              "constant", choices=("linear_half", "constant"))
    lambda_flow_vgg: float = option(0.2, "flow: VGG weight (appearance L1 has weight 1)")
    lambda_shape: float = option(1.0, "flow / warper: L1(coverage, garment mask)")
    hem_start: float = option(0.75, "flow: canonical rows below this fraction of H are the (maybe hidden) hem")
    hem_weight: float = option(0.2, "flow: shape-loss weight of the hem rows")
    lambda_smooth: float = option(6.0, "flow / warper: second-order smoothness")
    smooth_torso_mult: float = option(40.0, "flow: smoothness multiplier of the torso flow")
    lambda_ce: float = option(10.0, "mask: cross-entropy of the visible layer")
    lambda_layer_bce: float = option(1.0, "mask: per-layer amodal BCE")
    lambda_l1: float = option(1.0, "synth: L1 to the person")
    lambda_vgg: float = option(10.0, "synth: VGG perceptual")
    lambda_gan: float = option(1.0, "synth: LSGAN generator term (0: no discriminator)")
    lambda_fm: float = option(10.0, "synth: discriminator feature matching")
    vgg_weights: str = option("", "local vgg19-dcbb9e9d.pth for the VGG terms")
    pretrained_losses: bool = option(True, "false: random VGG (tests only)")
    global_rotate: float = option(8.0, "misalign: global rotation range, degrees")
    global_scale: float = option(0.1, "misalign: isotropic scale range")
    global_stretch: float = option(0.05, "misalign: anisotropic stretch range")
    global_shift: float = option(0.04, "misalign: global shift range, fraction of W / H")
    part_rotate: float = option(10.0, "misalign: sleeve rotation about the shoulder, degrees")
    part_shift: float = option(0.03, "misalign: per-part shift, fraction of W / H")
    elastic_sigma: float = option(0.02, "misalign: std of the 5x5 elastic grid, fraction of W / H")
    mask_jitter_p: float = option(0.2, "misalign: probability of eroding / dilating the garment mask")
    mask_jitter_px: float = option(15.0, "misalign: max erosion / dilation in pixels at H = 1024")
    proxy_prob: float = option(0.5, "mask stage: probability that a paired sample uses its canonical proxy")
    hole_prob: float = option(0.3, "mask stage: probability of proxy-like holes in an in-shop garment")
    predicted_layout_prob: float = option(0.3, "synth stage: probability of the predicted instead of the true layout")
    heatmap_sigma: float = option(6.0, "pose heatmap sigma in pixels at H = 1024")
    torso_dilate: float = option(0.1, "part split: torso polygon dilation, fraction of the shoulder width")
    synthetic_train: int = option(16, "dataset=synthetic: paired training persons")
    synthetic_test: int = option(8, "dataset=synthetic: test persons")
    synthetic_unpaired: int = option(16, "dataset=synthetic: unpaired photos")
    log_every: int = option(20, "steps between TensorBoard scalars")


def build_model(cfg):
    return BVTON(cfg.model_size, cfg.composition, cfg.layout_type, cfg.max_residual)


def build_discriminator(cfg):
    """The synth stage's one-scale PatchGAN on (image, layout, agnostic), or None when lambda_gan is 0 (no GAN)."""
    if cfg.lambda_gan <= 0:
        return None
    return PatchDiscriminator(3 + NUM_LAYERS + 3, width=MODEL_WIDTHS[cfg.model_size][0])


def proxy_or_cloth(model, b):
    """The mask stage's garment X and its mask: the canonical proxy (frozen flow) where use_proxy, else the in-shop
    garment with its proxy-like holes (hole_prob)."""
    with torch.no_grad():
        proxy = model.canonicalize(b["c_on"], b["parts"], b["pose"])
    use = b["use_proxy"].view(-1, 1, 1, 1)
    keep = 1 - b["hole"]
    cloth = b["cloth"] * keep + WHITE * (1 - keep)
    return use * proxy["image"] + (1 - use) * cloth, use * proxy["coverage"] + (1 - use) * b["cloth_mask"] * keep


def onehot(labels):
    return nn.functional.one_hot(labels, NUM_LAYERS).permute(0, 3, 1, 2).float()


class FlowStage(nn.Module):
    def __init__(self, model, cfg, vgg):
        super().__init__()
        self.model, self.cfg, self.vgg = model, cfg, vgg

    def forward(self, b):
        out = self.model.canonicalize(b["c_on"], b["parts"], b["pose"])
        return flow_loss(out, b["cloth"], b["cloth_mask"], self.cfg, self.vgg)


class MaskStage(nn.Module):
    def __init__(self, model, cfg):
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, b):
        garment, garment_mask = proxy_or_cloth(self.model, b)
        logits = self.model.mask_generator(b["parse_agnostic"], b["pose"], garment, garment_mask)
        warped = self.model.warp_garment(garment, garment_mask, onehot(b["layers"]), b["pose"])
        upper = b["parts"].sum(1, keepdim=True).clamp(max=1)
        return mask_stage_loss(logits, self.model.mask_generator.log_probs(logits), b["layers"], warped, b["c_on"],
                               upper, self.cfg)


class SynthStage(nn.Module):
    """G_S on pseudo pairs: target = the real person, garment = its own randomly misaligned on-model garment."""

    def __init__(self, model, cfg, vgg, disc=None):
        super().__init__()
        self.model, self.cfg, self.vgg = model, cfg, vgg
        self.disc_ref = [disc]  # a plain reference: the discriminator is trained (and DDP-wrapped) on its own

    def inputs(self, b):
        layout = onehot(b["layers"])
        if self.cfg.predicted_layout_prob > 0:
            with torch.no_grad():
                garment, garment_mask = proxy_or_cloth(self.model, b)
                pred = self.model.layout(b["parse_agnostic"], b["pose"], garment, garment_mask)[2]
            use = b["use_predicted_layout"].view(-1, 1, 1, 1)
            layout = use * pred + (1 - use) * layout
        if self.cfg.synth_input == "misaligned":
            garment, mask = b["misaligned"], b["misaligned_mask"]
        else:
            garment, mask = b["c_on"], b["parts"].sum(1, keepdim=True).clamp(max=1)
        return layout, garment, mask

    def forward(self, b):
        layout, garment, mask = self.inputs(b)
        fake = self.model.synthesizer(b["agnostic"], layout, b["pose"], garment, mask)
        terms = {"l1": self.cfg.lambda_l1 * (fake - b["person"]).abs().mean()}
        if self.vgg is not None and self.cfg.lambda_vgg:
            terms["vgg"] = self.cfg.lambda_vgg * self.vgg(fake, b["person"])
        cond = torch.cat([layout, b["agnostic"]], 1)
        disc = self.disc_ref[0]
        if disc is not None:  # its parameters are frozen during the generator step
            fake_feats = disc(torch.cat([fake, cond], 1))
            with torch.no_grad():
                real_feats = disc(torch.cat([b["person"], cond], 1))
            terms["gan"] = self.cfg.lambda_gan * lsgan(fake_feats, True)
            terms["fm"] = self.cfg.lambda_fm * feature_matching(fake_feats, real_feats)
        loss = sum(terms.values())
        return loss, {k: float(v.detach()) for k, v in terms.items()}, (fake.detach(), cond.detach())


def stage_epochs(cfg, stage):
    return getattr(cfg, f"epochs_{stage}")


def load_earlier_stages(model, cfg, run, stage):
    """Load the weights of the stages before `stage` (none for flow) -> their loss history."""
    if stage == "flow":
        return {}
    prev = STAGES[STAGES.index(stage) - 1]
    path = Path(cfg.init_checkpoint) if cfg.init_checkpoint else run.ckpt_dir / f"{prev}.pt"
    if not path.is_file():
        raise ConfigError(f"stage {stage} needs the trained {prev} stage: {path} not found (train --stage {prev} "
                          f"first, then pass --init_checkpoint <that run>/checkpoints/{prev}.pt)")
    ckpt = load_checkpoint(path)
    model.load_state_dict(ckpt["model"])
    return ckpt.get("history", {})


def trainable(model, stage):
    return {"flow": [model.canonicalizer], "mask": [model.mask_generator, model.warper],
            "synth": [model.synthesizer]}[stage]


def make_scheduler(optimizer, cfg, total_epochs):
    if cfg.lr_schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1.0)
    half = total_epochs // 2
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1.0 if e < half else
                                             max(0.0, 1.0 - (e - half) / max(1, total_epochs - half)))


@exit_on_user_error
def main(argv=None):
    cfg = parse_config(TrainConfig, argv, config_dir=Path(__file__).resolve().parent, description=__doc__)
    dist, device = init_distributed(cfg.device, cfg.cpu_threads)
    if cfg.batch_size % dist.world_size:
        raise ConfigError(f"batch_size {cfg.batch_size} must divide over {dist.world_size} processes")
    seed_everything(cfg.seed, cfg.deterministic)  # same init on every rank; data randomness is per sample
    run = Run(cfg, "bvton", dist)
    stages = list(STAGES) if cfg.stage == "all" else [cfg.stage]
    model = build_model(cfg).to(device)
    vgg = None
    if cfg.lambda_vgg or cfg.lambda_flow_vgg:
        vgg = VGGPerceptual(cfg.vgg_weights, pretrained=cfg.pretrained_losses).to(device)
    resume = load_checkpoint(run.last_checkpoint) if cfg.resume and run.last_checkpoint.exists() else None
    if resume is not None and resume["stage"] in stages:
        stages = stages[stages.index(resume["stage"]):]
    elif resume is not None:
        raise ConfigError(f"{run.last_checkpoint} is a {resume['stage']} checkpoint; this run trains {stages}")
    history = resume.get("history", {}) if resume is not None else {}
    step = resume["step"] if resume is not None else 0
    if resume is None:
        history = load_earlier_stages(model, cfg, run, stages[0])
    for stage in stages:
        model.requires_grad_(False)
        for m in trainable(model, stage):
            m.requires_grad_(True)
        params = [p for m in trainable(model, stage) for p in m.parameters()]
        lr, betas = {"flow": (cfg.lr_flow, (0.5, 0.999)), "mask": (cfg.lr_mask, (0.5, 0.999)),
                     "synth": (cfg.lr_synth, (0.0, 0.9))}[stage]
        optimizer = torch.optim.Adam(params, lr=lr, betas=betas)
        epochs = stage_epochs(cfg, stage)
        scheduler = make_scheduler(optimizer, cfg, epochs)
        disc = build_discriminator(cfg) if stage == "synth" else None
        disc_opt = None
        if disc is not None:
            disc = disc.to(device)
            disc_opt = torch.optim.Adam(disc.parameters(), lr=cfg.lr_disc, betas=(0.0, 0.9))
        start_epoch = 0
        if resume is not None and resume["stage"] == stage:
            step, start_epoch = restore_training_state(resume, model, optimizer, scheduler)
            if disc is not None:
                disc.load_state_dict(resume["disc"])
                disc_opt.load_state_dict(resume["disc_optimizer"])
            run.log.info("resumed %s stage at epoch %d, step %d", stage, start_epoch, step)
        resume = None
        paired, unpaired = build_sources(cfg, "train")
        dataset = PseudoPairDataset(paired, None if stage == "flow" else unpaired, (cfg.height, cfg.width), cfg)
        if stage == "flow" and paired is None:
            raise ConfigError("the flow stage needs paired data (use_paired true)")
        sampler = distributed_sampler(dataset, shuffle=True, seed=cfg.seed, drop_last=True)
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size // dist.world_size, sampler=sampler,
                                             drop_last=True, num_workers=cfg.num_workers)
        module = {"flow": lambda: FlowStage(model, cfg, vgg), "mask": lambda: MaskStage(model, cfg),
                  "synth": lambda disc=disc: SynthStage(model, cfg, vgg, disc)}[stage]()
        net = wrap_ddp(module, dist, device)
        disc_net = wrap_ddp(disc, dist, device) if disc is not None else None
        losses = history.setdefault(stage, [])
        for epoch in run.progress(range(start_epoch, epochs), desc=stage):
            model.train()
            sampler.set_epoch(epoch)
            dataset.set_epoch(epoch)
            total, count = 0.0, 0
            for batch in loader:
                b = {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}
                if disc is not None:
                    disc.requires_grad_(False)
                with autocast(device, cfg.amp):
                    out = net(b)
                loss, terms = out[0], out[1]
                check_finite(loss, step, run.last_checkpoint)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if disc_net is not None:  # LSGAN discriminator step, real and fake in one forward
                    disc.requires_grad_(True)
                    fake, cond = out[2]
                    pred = disc_net(torch.cat([torch.cat([b["person"], fake]), torch.cat([cond, cond])], 1))[-1]
                    real_pred, fake_pred = pred.chunk(2)
                    d_loss = 0.5 * (lsgan([real_pred], True) + lsgan([fake_pred], False))
                    disc_opt.zero_grad(set_to_none=True)
                    d_loss.backward()
                    disc_opt.step()
                    terms["disc"] = float(d_loss.detach())
                step += 1
                total, count = total + float(loss.detach()), count + 1
                if step % cfg.log_every == 0:
                    run.scalars(step, **{f"{stage}/loss": float(loss.detach()),
                                         **{f"{stage}/{k}": v for k, v in terms.items()}})
            scheduler.step()
            losses.append(total / max(1, count))
            if dist.is_main:
                extra = {}
                if disc is not None:
                    extra = dict(disc=disc.state_dict(), disc_optimizer=disc_opt.state_dict())
                save_checkpoint(run.last_checkpoint, training_state(
                    model, optimizer, scheduler, step=step, epoch=epoch + 1, config=config_to_dict(cfg),
                    stage=stage, history=history,
                    **extra))
        if dist.is_main:
            save_checkpoint(run.ckpt_dir / f"{stage}.pt", {"model": model.state_dict(), "stage": stage,
                                                           "config": config_to_dict(cfg), "history": history})
    if dist.is_main:
        metrics = {}
        for stage, values in history.items():
            if values:
                metrics[f"{stage}_loss_first_epoch"], metrics[f"{stage}_loss_last_epoch"] = values[0], values[-1]
        if "synth" in history:
            paired, _ = build_sources(cfg, "test", "paired")
            test = PseudoPairDataset(paired, None, (cfg.height, cfg.width), cfg)
            res = run_bvton(model, torch.utils.data.DataLoader(test, batch_size=cfg.batch_size), device, cfg.amp,
                            out_dir=run.dir)
            metrics.update({f"test_{k}": v for k, v in paired_metrics(res).items()})
        run.write_metrics(metrics)
    run.close()
    cleanup_distributed()


if __name__ == "__main__":
    main()
