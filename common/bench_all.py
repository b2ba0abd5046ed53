"""`make bench`: every method's speed and memory against its peer, one command, one table (issue 14).

    python -m common.bench_all [--size tiny|paper] [--out bench/] [--device auto|cpu|cuda] [--methods a,b]
    make bench                     # the same through the venv;  PYTHON=python3 make bench  skips the venv

What it does, in order:
1. When a CUDA device is present, the CUDA-marked tests (`pytest -m cuda`) run first; their pass/fail counts
   go into the report (on a CPU-only machine the report says they were not run and why).
2. Each method's own `bench.sh` runs in its own process, in the fixed order of `METHODS`, with the arguments
   its adapter maps `--size` to, under a per-method time budget (the process group is killed when it runs
   over). `--size paper` (the default on CUDA) is the paper's shapes as each method's README names them;
   `--size tiny` (the default on CPU) is a few seconds per method and says nothing about speed.
3. The adapter reads the method's JSON and returns one record per case (see `record`): method, case, device,
   torch version, size, our time (ms per step) and memory (MiB), the peer's, ratios ours/peer, the goal and
   whether it is met. A missing or failing peer (no torch-geometric, PEFT raising) is a record that says so;
   a bench that fails or times out gives a record per expected case with the error, and when the adapter
   knows how to run the method without its peer (`no_peer`), the method is re-run that way so that our own
   numbers still come. Nothing here crashes the whole run.
4. `<out>/results.json` (all records, the CUDA-test summary, per-method wall time, versions) and
   `<out>/results.md` (the table a README can paste); raw method JSON and logs under `<out>/raw/`.
   `bench/` is git-ignored: results are per machine; the READMEs quote the run they show, with its date.

Pass/fail is decided only where the goal applies, i.e. on CUDA at `--size paper` (the goals of issue 14 are
GPU goals); elsewhere `passed` is null and `goal_note` says why. Times are medians or means over a method's
timed steps, as that method's bench reports them; memory is what each bench measures (CUDA allocator peak,
or CPU peak-RSS growth where a bench measures that, else null).

Adding a method (dsnet, bvton, ickd, ...) is one entry in `METHODS`: its folder, the bench arguments for each
size, the case names it reports, its goal text, a time budget and a parser. The simplest parser is
`parse_standard`: have the method's bench.py write `{"device": ..., "torch": ..., "records": [{"case",
"size", "ours_ms", "ours_mb", "peer", "peer_ms", "peer_mb", "peer_error", "goal", "passed"}, ...]}` to the
path given by `--out` and set `parse=parse_standard`; a bench with its own format gets a small `parse_<name>`
function like those below.

Imports only the standard library and torch (to see whether CUDA is present and report versions).
"""
import argparse
import dataclasses
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------------------------
# records


def record(case, size, ours_ms=None, ours_mb=None, *, peer="", peer_ms=None, peer_mb=None, peer_error=None,
           goal="", passed=None, extra=None):
    """One row of the table. `passed` is the adapter's verdict on the goal from the numbers (None: not
    checkable, e.g. the peer is missing); `run_method` later nulls it where the goal does not apply."""
    ratio = lambda a, b: a / b if a is not None and b else None  # noqa: E731
    return {"case": case, "size": size, "ours_ms": ours_ms, "ours_mb": ours_mb, "peer": peer, "peer_ms": peer_ms,
            "peer_mb": peer_mb, "peer_error": peer_error, "time_ratio": ratio(ours_ms, peer_ms),
            "memory_ratio": ratio(ours_mb, peer_mb), "goal": goal, "passed": passed, **(extra or {})}


def _all(*conditions):
    """True / False when every condition is known, None when one is unknown (a missing number)."""
    if any(c is None for c in conditions):
        return None
    return all(conditions)


def _le(value, bound):
    return None if value is None else value <= bound


def parse_standard(out, size):
    """A bench that writes the standard schema (see the module docstring)."""
    return out.get("records", [])


# ----------------------------------------------------------------------------------------------------------
# adapters of the six existing benches


def parse_simple_hgn(out, size):
    """hgb_benchmark/simple_hgn/bench.py: `cases` per (device, graph, model), `skipped` when PyG is absent."""
    recs = []
    skipped = out.get("skipped", {}).get("pyg_gat")
    for graph in dict.fromkeys(c["graph"] for c in out.get("cases", [])):
        by = {c["model"]: c for c in out["cases"] if c["graph"] == graph}
        ours, peer = by.get("simple_hgn", {}), by.get("pyg_gat")
        peer_error = skipped or (peer or {}).get("error") or (None if peer else "not measured")
        peer_ok = peer is not None and "error" not in peer
        shape = f"{ours.get('num_nodes', '?')} nodes, {ours.get('num_edges', '?')} edges, full batch"
        rec = record(graph, shape, ours.get("median_ms"), ours.get("peak_mb"), peer="torch-geometric GATConv stack",
                     peer_ms=peer["median_ms"] if peer_ok else None, peer_mb=peer["peak_mb"] if peer_ok else None,
                     peer_error=None if peer_ok else peer_error, extra={"error": ours.get("error")})
        if graph == "freebase":
            rec["goal"] = "Freebase-sized training step within 8 GB"
            rec["passed"] = _le(rec["ours_mb"], 8192)
        else:
            rec["goal"] = "<= 1.0x the peer's time and memory"
            rec["passed"] = _all(_le(rec["time_ratio"], 1.0), _le(rec["memory_ratio"], 1.0))
        recs.append(rec)
    return recs


def parse_ipwd(out, size):
    """distillation/ipwd/bench.py: rows per (kd|ipwd, batch, crd_fp32_eager|fast) with images/s."""
    rows = {(r["method"], r["batch_size"], r["path"]): r for r in out.get("results", [])}
    ms = lambda r: None if r is None else 1000 * r["batch_size"] / r["images_per_s"]  # noqa: E731
    recs = []
    for batch in sorted({b for _, b, _ in rows}):
        for method in ("kd", "ipwd"):
            fast, crd = rows.get((method, batch, "fast")), rows.get((method, batch, "crd_fp32_eager"))
            if fast is None:
                continue
            rec = record(f"{method}_b{batch}", f"batch {batch}", ms(fast), (fast or {}).get("peak_mem_mib"),
                         peer="fp32 eager CRD-style step", peer_ms=ms(crd), peer_mb=(crd or {}).get("peak_mem_mib"),
                         peer_error=None if crd else "not measured", goal=">= 2.5x the images/s of the peer")
            rec["passed"] = _le(rec["time_ratio"], 1 / 2.5)
            recs.append(rec)
        kd, ipwd = rows.get(("kd", batch, "fast")), rows.get(("ipwd", batch, "fast"))
        if kd and ipwd:
            rec = record(f"ipwd_vs_kd_b{batch}", f"batch {batch}", ms(ipwd), ipwd.get("peak_mem_mib"),
                         peer="our KD step (fast path)", peer_ms=ms(kd), peer_mb=kd.get("peak_mem_mib"),
                         goal="IPWD step <= 1.1x the KD step")
            rec["passed"] = _le(rec["time_ratio"], 1.1)
            recs.append(rec)
    return recs


def parse_ino(out, size):
    """vos/ino/bench.py: chunked vs dense propagation, and the training step (no peer)."""
    prop, train = out.get("propagation", {}), out.get("training", {})
    mb = lambda b: None if b is None else b / 2**20  # noqa: E731
    frame = "x".join(map(str, out.get("frame", [])))
    chunked, dense = prop.get("chunked", {}), prop.get("dense")
    rec = record("propagation", f"{frame} frame, {prop.get('context_frames')} context frames",
                 1000 * chunked["seconds_per_frame"] if chunked else None, mb(chunked.get("peak_memory_bytes")),
                 peer="dense affinity (DINO-style)",
                 peer_ms=1000 * dense["seconds_per_frame"] if dense else None,
                 peer_mb=mb(dense.get("peak_memory_bytes")) if dense else None,
                 peer_error=None if dense else "not measured",
                 goal=">= 3x the peer's speed at equal output; <= 4 GB",
                 extra={"max_abs_difference": prop.get("max_abs_difference")})
    diff = prop.get("max_abs_difference")
    rec["passed"] = _all(_le(rec["time_ratio"], 1 / 3), _le(rec["ours_mb"], 4096),
                         None if diff is None else diff <= 1e-4)
    recs = [rec]
    if train:
        recs.append(record("training_step", f"{train['arch']}, {train['clips']} clips x {train['frames_per_clip']} "
                           f"frames", 1000 * train["seconds_per_step"], mb(train.get("peak_memory_bytes")),
                           peer="", peer_error="no peer for this case", goal="(reported, no goal)"))
    return recs


def parse_daflow(out, size):
    """virtual_tryon/daflow/bench.py: rows per (size, warp backend, dtype); peer = reference warp in fp32."""
    rows = out.get("rows", [])
    find = lambda h, be, dt: next((r for r in rows if r["height"] == h and r["backend"] == be  # noqa: E731
                                   and r["dtype"] == dt and not r.get("oom")), None)
    recs = []
    for h, w, b in dict.fromkeys((r["height"], r["width"], r["batch"]) for r in rows):
        peer = find(h, "reference", "fp32")
        ours = find(h, "deform_conv", "bf16") or find(h, "deform_conv", "fp32")
        if h >= 1024:  # the memory goal is for the fp32 step (the bf16 one is reported by daflow's own bench)
            ours = find(h, "deform_conv", "fp32") or ours
        label = f"deform_conv {'bf16' if ours and ours['dtype'] == 'bf16' else 'fp32'}"
        rec = record(f"{h}x{w}_b{b}", f"{h}x{w} batch {b}, ours = {label}", (ours or {}).get("ms_per_step"),
                     (ours or {}).get("peak_mib"), peer="reference warp, fp32",
                     peer_ms=(peer or {}).get("ms_per_step"), peer_mb=(peer or {}).get("peak_mib"),
                     peer_error=None if peer else "not measured (or out of memory)")
        if h >= 1024:
            rec["goal"], rec["passed"] = "<= 0.4x the peer's memory", _le(rec["memory_ratio"], 0.4)
        else:
            rec["goal"], rec["passed"] = ">= 1.5x the peer's speed", _le(rec["time_ratio"], 1 / 1.5)
        recs.append(rec)
    return recs


def parse_consistent_teacher(out, size):
    """semi_supervised/consistent_teacher/bench.py: our SSOD iteration vs torchvision RetinaNet's step."""
    by = {r["case"]: r for r in out.get("results", [])}
    ours, peer = by.get("consistent_teacher", {}), by.get("retinanet")
    peer_ok = peer is not None and "error" not in peer
    s = lambda r, k: None if r is None or r.get(k) is None else 1000 * r[k]  # noqa: E731
    cfg = out.get("config", {})
    rec = record("ssod_iteration", f"{cfg.get('labeled')}+{cfg.get('unlabeled')} images "
                 f"{cfg.get('height')}x{cfg.get('width')}, {cfg.get('model')} model",
                 s(ours, "seconds_per_iter"), ours.get("peak_mb"), peer="torchvision RetinaNet R50-FPN step",
                 peer_ms=s(peer, "seconds_per_iter") if peer_ok else None,
                 peer_mb=peer.get("peak_mb") if peer_ok else None,
                 peer_error=None if peer_ok else (peer or {}).get("error", "not measured"),
                 goal="<= 2x the peer's time; ASA+GMM <= 10% of the iteration",
                 extra={"asa_gmm_share": ours.get("asa_gmm_share"), "error": ours.get("error")})
    share = ours.get("asa_gmm_share")
    rec["passed"] = _all(_le(rec["time_ratio"], 2.0), _le(share, 0.10))
    return [rec]


def parse_ipt(out, size):
    """prompt_tuning/ipt/bench.py: our P-tuning v2 vs PEFT prefix tuning, IPT vs our P-tuning v2."""
    by = {r["case"]: r for r in out.get("cases", [])}
    cfg = out.get("config", {})
    shape = f"batch {cfg.get('batch_size')} x {cfg.get('seq_len')} tokens, {cfg.get('layers')} layers"
    gib = lambda r: None if r is None or r.get("peak_memory_gib") is None else 1024 * r["peak_memory_gib"]  # noqa
    ms = lambda r: None if r is None else 1000 * r["step_s"]  # noqa: E731
    ptv2, ipt, peft = by.get("ours_ptuning_v2"), by.get("ours_ipt_prefix"), by.get("peft_prefix")
    peer_error = None if peft else out.get("skipped", {}).get("peft_prefix", "not measured")
    versions = out.get("versions", {})
    recs = [record("ptuning_v2_vs_peft", shape, ms(ptv2), gib(ptv2), peer=f"PEFT prefix tuning (peft "
                   f"{versions.get('peft')}, transformers {versions.get('transformers')})", peer_ms=ms(peft),
                   peer_mb=gib(peft), peer_error=peer_error, goal=">= 1.0x the peer's train tokens/s"),
            record("ipt_vs_ptuning_v2", shape, ms(ipt), gib(ipt), peer="our P-tuning v2 step", peer_ms=ms(ptv2),
                   peer_mb=gib(ptv2), goal="IPT step <= 1.2x the P-tuning v2 step")]
    recs[0]["passed"] = _le(recs[0]["time_ratio"], 1.0)
    recs[1]["passed"] = _le(recs[1]["time_ratio"], 1.2)
    return recs


def parse_ofa_prompt(out, size):
    """prompt_tuning/ofa_prompt/bench.py: prompt-tuning step vs fine-tuning step (the paper's comparison) and
    beam-search latency."""
    cases = {c["case"]: c for c in out.get("cases", [])}
    shape = out.get("shape", {})
    where = f"OFA-{shape.get('model')}, {shape.get('image')} px, batch {shape.get('batch')}"
    prompt, ft, beam = cases.get("train_prompt", {}), cases.get("train_finetune", {}), cases.get("beam5_16_tokens", {})
    ms = lambda c, k: None if c.get(k) is None else 1000 * c[k]  # noqa: E731
    return [record("prompt_vs_finetune", where, ms(prompt, "step_s"), prompt.get("peak_mb"),
                   peer="full fine-tuning step (ours)", peer_ms=ms(ft, "step_s"), peer_mb=ft.get("peak_mb"),
                   goal="(reported, no goal: the paper's Table 5 compares GPU-hours)"),
            record("beam5_16_tokens", where, ms(beam, "latency_s"), None, peer="",
                   peer_error="no peer for this case", goal="(reported, no goal)")]


def parse_dsnet(out, size):
    """distillation/dsnet/bench.py: batch-1 latency; each sliced width vs the same width as a dense network, and the
    gated network routed to its slimmest width vs the full network, for DS-MBNet (top level) and DS-ViT++ (`vit`)."""
    recs = []
    for prefix, net, part in (("", "DS-MBNet", out), ("vit_", "DS-ViT++ DeiT-S", out.get("vit"))):
        if part is None:
            continue
        rows, where = part.get("rows", {}), f"{net}, batch 1, {part.get('image_size')} px"
        for name in sorted((k for k in rows if k.startswith("width_")), key=lambda k: int(k.split("_")[1])):
            i = name.split("_")[1]
            dense = rows.get(f"dense_{i}", {})
            rec = record(f"{prefix}sliced_vs_dense_width_{i}", where, rows[name]["median_ms"], None,
                         peer=f"standalone dense width {i}", peer_ms=dense.get("median_ms"),
                         peer_error=None if dense else "not measured", goal="<= 1.2x the dense network")
            rec["passed"] = _le(rec["time_ratio"], 1.2)
            recs.append(rec)
        full, slim = rows.get(f"width_{part.get('full_width')}", {}), rows.get("gated_slimmest", {})
        rec = record(f"{prefix}gated_slimmest_vs_full", where, slim.get("median_ms"), None,
                     peer="full network (sliced)", peer_ms=full.get("median_ms"),
                     peer_error=None if full else "not measured", goal=">= 1.5x faster than the full network")
        rec["passed"] = _le(rec["time_ratio"], 1 / 1.5)
        recs.append(rec)
    return recs


VIT_CASES = [f"vit_sliced_vs_dense_width_{i}" for i in range(4)] + ["vit_gated_slimmest_vs_full"]


def parse_ickd(out, size):
    """distillation/ickd/bench.py: one ICKD step vs one KD step on the same pair and batch."""
    steps = {s["step"]: s for s in out.get("steps", [])}
    ms = lambda s: None if not s else 1000 * out["batch_size"] / s["images_per_s"]  # noqa: E731
    kd, ickd = steps.get("kd"), steps.get("ickd")
    rec = record("ickd_vs_kd", f"{out.get('pair')}, batch {out.get('batch_size')}", ms(ickd),
                 (ickd or {}).get("peak_mb"), peer="KD step (ours, RepDistiller's recipe)", peer_ms=ms(kd),
                 peer_mb=(kd or {}).get("peak_mb"), peer_error=None if kd else "not measured",
                 goal="ICKD step <= 1.15x a KD step")
    rec["passed"] = _le(rec["time_ratio"], 1.15)
    return [rec]


def parse_bvton(out, size):
    """virtual_tryon/bvton/bench.py: end-to-end inference and each stage's training step. DAFlow's own bench.sh runs
    in the same run on BVTON's inference inputs: its batch-1 inference (reference warp, BVTON's dtype) is the peer
    of the inference row; its training step (only when run with --daflow_cases train,inference) that of the stage
    rows."""
    rows = {r["case"]: r for r in out.get("rows", [])}
    daflow = out.get("daflow") or {}
    result = daflow.get("result") or {}
    where = lambda r: f"{r.get('height')}x{r.get('width')} b{r.get('batch')}" if r else ""  # noqa: E731
    inf = rows.get("inference")
    ok = [r for r in result.get("inference", []) if "error" not in r]
    peer = next((r for r in ok if r.get("backend") == "reference" and r.get("dtype") == (inf or {}).get("dtype")),
                ok[0] if ok else None)
    why = daflow.get("error") or next((r["error"] for r in result.get("inference", []) if "error" in r), None)
    recs = [record("inference", where(inf), (inf or {}).get("ms"), (inf or {}).get("peak_mib"),
                   peer=f"DAFlow inference ({where(peer)}, {peer.get('backend')} warp, same inputs)" if peer else "",
                   peer_ms=(peer or {}).get("ms"), peer_mb=(peer or {}).get("peak_mib"),
                   peer_error=None if peer else (why or "not measured"),
                   goal="(reported: what BVTON's quality costs beside DAFlow)")]
    train = result.get("rows", [])
    ref = next((r for r in train if r.get("backend") == "reference"), train[0] if train else None)
    for stage in ("flow", "mask", "synth"):
        r = rows.get(stage)
        recs.append(record(f"{stage}_step", where(r), (r or {}).get("ms"), (r or {}).get("peak_mib"),
                           peer=f"DAFlow train step ({where(ref)}, reference warp)" if ref else "",
                           peer_ms=(ref or {}).get("ms_per_step"), peer_mb=(ref or {}).get("peak_mib"),
                           peer_error=None if ref else (daflow.get("error") or "not measured (DAFlow's train steps "
                                                        "run with bvton's --daflow_cases train,inference)"),
                           goal="(reported, no goal)"))
    return recs


@dataclasses.dataclass
class Method:
    """One benchmarked method: how to run its bench.sh at each size and how to read what it writes."""
    name: str
    folder: str                 # relative to the repo root; holds bench.sh
    args: dict                  # size -> extra bench arguments (the device is added as `--device <device>`)
    cases: dict                 # size -> the case names `parse` must report
    parse: object               # (method JSON, size) -> [record, ...]
    goal: str                   # the goal, for the table's header
    budget_s: dict              # size -> seconds before the bench's process group is killed
    out_flag: str = "--out"     # how the JSON path is passed ("--out_dir": the bench writes <dir>/bench.json)
    no_peer: list = dataclasses.field(default_factory=list)  # arguments that skip the peer (re-run on failure)


# The goals table of issue 14 (measured side by side in one run, on CUDA at --size paper).
METHODS = [
    Method("simple_hgn", "hgb_benchmark/simple_hgn",
           args={"tiny": ["--graphs", "small", "--repeats", "2", "--warmup", "1"],
                 "paper": ["--graphs", "dblp,freebase"]},
           cases={"tiny": ["small"], "paper": ["dblp", "freebase"]}, parse=parse_simple_hgn,
           goal="epoch on a DBLP-sized graph vs torch-geometric GATConv stack, same dims: <= 1.0x time and "
                "memory; Freebase-sized in 8 GB",
           budget_s={"tiny": 90, "paper": 150}, no_peer=["--models", "simple_hgn"]),
    Method("ipwd", "distillation/ipwd",
           args={"tiny": ["--teacher", "resnet8x4", "--student", "resnet8", "--batch_sizes", "8", "--iters", "2",
                          "--warmup", "1"],
                 "paper": ["--batch_sizes", "64,256"]},
           cases={"tiny": ["kd_b8", "ipwd_b8", "ipwd_vs_kd_b8"],
                  "paper": ["kd_b64", "ipwd_b64", "ipwd_vs_kd_b64", "kd_b256", "ipwd_b256", "ipwd_vs_kd_b256"]},
           parse=parse_ipwd,
           goal="images/s of the fast path vs fp32 eager CRD-style step, resnet32x4->resnet8x4: >= 2.5x; "
                "IPWD step <= 1.1x KD step",
           budget_s={"tiny": 90, "paper": 120}),
    Method("ino", "vos/ino",
           args={"tiny": ["--height", "64", "--width", "96", "--n_context", "2", "--radius", "4", "--repeats", "2",
                          "--warmup", "1"],
                 "paper": ["--height", "480", "--width", "854"]},
           cases={"tiny": ["propagation", "training_step"], "paper": ["propagation", "training_step"]},
           parse=parse_ino, goal="propagation at 854x480 vs dense affinity: >= 3x at equal output; <= 4 GB",
           budget_s={"tiny": 60, "paper": 60}),
    Method("daflow", "virtual_tryon/daflow",
           args={"tiny": ["--preset", "smoke", "--steps", "1", "--warmup", "1"], "paper": ["--preset", "paper"]},
           cases={"tiny": ["64x48_b2"], "paper": ["256x192_b8", "1024x768_b1"]}, parse=parse_daflow,
           goal="train step vs the reference warp in fp32, 256x192 b8 and 1024x768 b1: >= 1.5x; <= 0.4x memory "
                "at 1024x768",
           budget_s={"tiny": 60, "paper": 90}),
    Method("consistent_teacher", "semi_supervised/consistent_teacher",
           args={"tiny": ["--model", "tiny", "--height", "128", "--width", "128", "--iters", "1", "--warmup", "1"],
                 "paper": []},
           cases={"tiny": ["ssod_iteration"], "paper": ["ssod_iteration"]}, parse=parse_consistent_teacher,
           goal="one SSOD iteration vs torchvision RetinaNet R50-FPN step, same images: <= 2x; ASA+GMM <= 10%",
           budget_s={"tiny": 90, "paper": 120}, out_flag="--out_dir", no_peer=["--cases", "consistent_teacher"]),
    Method("ipt", "prompt_tuning/ipt",
           args={"tiny": ["--layers", "2", "--hidden", "64", "--heads", "2", "--batch_size", "2", "--seq_len", "32",
                          "--prompt_length", "8", "--steps", "1", "--warmup", "1"],
                 "paper": ["--batch_size", "32", "--seq_len", "128", "--steps", "20", "--warmup", "3"]},
           cases={"tiny": ["ptuning_v2_vs_peft", "ipt_vs_ptuning_v2"],
                  "paper": ["ptuning_v2_vs_peft", "ipt_vs_ptuning_v2"]}, parse=parse_ipt,
           goal="train tokens/s vs PEFT prefix tuning on transformers' BERT: >= 1.0x; IPT <= 1.2x P-tuning v2",
           budget_s={"tiny": 60, "paper": 90}, no_peer=["--cases", "finetune,ptuning_v2,ipt_prefix"]),
    Method("dsnet", "distillation/dsnet",
           args={"tiny": ["--image_size", "64", "--widths", "0,13", "--iters", "2", "--warmup", "1"], "paper": []},
           cases={"tiny": ["sliced_vs_dense_width_0", "sliced_vs_dense_width_13", "gated_slimmest_vs_full"] + VIT_CASES,
                  "paper": [f"sliced_vs_dense_width_{i}" for i in range(14)] + ["gated_slimmest_vs_full"] + VIT_CASES},
           parse=parse_dsnet,
           goal="batch-1 latency (DS-MBNet and DS-ViT++): a sliced width within 1.2x of the same dense network; "
                "gated routed to the slimmest width >= 1.5x faster than the full network",
           budget_s={"tiny": 60, "paper": 120}),
    Method("ickd", "distillation/ickd",
           args={"tiny": ["--teacher", "resnet8x4", "--student", "resnet8", "--batch_size", "8", "--iters", "1",
                          "--warmup", "1"],
                 "paper": []},
           cases={"tiny": ["ickd_vs_kd"], "paper": ["ickd_vs_kd"]}, parse=parse_ickd,
           goal="one ICKD step vs one KD step, resnet32x4->resnet8x4, batch 64: <= 1.15x",
           budget_s={"tiny": 60, "paper": 90}),
    Method("bvton", "virtual_tryon/bvton",
           args={"tiny": ["--preset", "smoke", "--steps", "1", "--warmup", "1"], "paper": ["--preset", "paper"]},
           cases={"tiny": ["inference", "flow_step", "mask_step", "synth_step"],
                  "paper": ["inference", "flow_step", "mask_step", "synth_step"]}, parse=parse_bvton,
           goal="end-to-end inference and each stage's training step at 1024x768, beside DAFlow's inference on the "
                "same inputs (reported)",
           budget_s={"tiny": 120, "paper": 300}),
    Method("ofa_prompt", "prompt_tuning/ofa_prompt",
           args={"tiny": ["--size", "tiny", "--prompt_length", "16", "--steps", "1", "--warmup", "1"],
                 "paper": ["--size", "paper", "--steps", "10", "--warmup", "2"]},
           cases={"tiny": ["prompt_vs_finetune", "beam5_16_tokens"],
                  "paper": ["prompt_vs_finetune", "beam5_16_tokens"]}, parse=parse_ofa_prompt,
           goal="train step of prompt tuning vs full fine-tuning on OFA-base shapes, and beam-search latency "
                "(reported)",
           budget_s={"tiny": 90, "paper": 120}),
]


# ----------------------------------------------------------------------------------------------------------
# running


def device_name(device):
    if device == "cuda":
        return torch.cuda.get_device_name()
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {model}, {os.cpu_count()} cores"


def run_process(cmd, log_path, budget_s, env):
    """Run cmd in its own process group, output to log_path -> (returncode or None on timeout, seconds)."""
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=budget_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the bench and any case processes it spawned
            proc.wait()
            rc = None
    return rc, time.perf_counter() - start


def _last_line(log_path):
    lines = [ln.strip() for ln in Path(log_path).read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def run_method(m, size, device, out_dir, env, budget_scale=1.0):
    """Run one method's bench (again without its peer if it fails and can) -> (records, run info)."""
    raw = out_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    budget = m.budget_s[size] * budget_scale
    info = {"method": m.name, "budget_s": budget, "runs": []}

    def attempt(extra, tag):
        json_path = raw / f"{m.name}{tag}.json"
        target = raw / f"{m.name}{tag}" if m.out_flag == "--out_dir" else json_path
        json_path.unlink(missing_ok=True)
        cmd = ["bash", str(REPO / m.folder / "bench.sh"), "--device", device, *m.args[size], *extra,
               m.out_flag, str(target)]
        rc, seconds = run_process(cmd, raw / f"{m.name}{tag}.log", budget, env)
        if m.out_flag == "--out_dir":
            json_path = target / "bench.json"
        info["runs"].append({"command": " ".join(cmd[1:]), "returncode": rc, "seconds": round(seconds, 1)})
        if rc is None:
            return None, f"timed out after {budget:.0f} s (per-method budget)"
        if rc != 0 or not json_path.exists():
            return None, f"bench exited with {rc}: {_last_line(raw / f'{m.name}{tag}.log')}"
        try:
            return json.loads(json_path.read_text()), None
        except json.JSONDecodeError as e:
            return None, f"unreadable JSON {json_path}: {e}"

    out, error = attempt([], "")
    peer_failure = None
    if out is None and m.no_peer:
        peer_failure = error
        out, error = attempt(m.no_peer, "_no_peer")
    records = []
    if out is not None:
        try:
            records = m.parse(out, size)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            error = f"could not read the bench's JSON ({type(e).__name__}: {e})"
            records = []
    got = {r["case"] for r in records}
    for case in m.cases[size]:
        if case not in got:
            records.append(record(case, "", peer_error="not measured",
                                  extra={"error": error or "the bench did not report this case"}))
    torch_version = (out or {}).get("torch") or (out or {}).get("env", {}).get("torch") or torch.__version__
    goal_applies = device == "cuda" and size == "paper"
    for r in records:
        r.setdefault("error", None)
        if peer_failure and r["peer_ms"] is None and r["peer"]:
            r["peer_error"] = f"the run with the peer failed, ours re-run without it: {peer_failure}"
        if not goal_applies:
            r["passed"] = None
        r.update(method=m.name, device=device_name(device), torch=torch_version,
                 goal_note=None if goal_applies else "goals apply on CUDA at --size paper")
    info["seconds"] = round(sum(r["seconds"] for r in info["runs"]), 1)
    return records, info


def run_cuda_tests(env, budget_s):
    """`pytest -m cuda` when a GPU is present -> a summary dict (counts and the last line)."""
    if not torch.cuda.is_available():
        return {"ran": False, "reason": "no CUDA device"}
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider"]
    log = Path(env["BENCH_OUT"]) / "raw" / "cuda_tests.log"
    rc, seconds = run_process(cmd, log, budget_s, env)
    summary = _last_line(log)
    counts = {}
    for part in summary.strip("= ").split(","):
        words = part.split()
        if len(words) >= 2 and words[0].isdigit():
            counts[words[1]] = int(words[0])
    return {"ran": True, "returncode": rc, "seconds": round(seconds, 1), "summary": summary, "counts": counts,
            "passed": rc == 0}


# ----------------------------------------------------------------------------------------------------------
# report


def _fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if math.isfinite(v) else str(v)
    return str(v)


def format_markdown(report):
    env = report["env"]
    lines = [f"Benchmarks, `python -m common.bench_all --size {report['size']}`, {env['device']}, torch "
             f"{env['torch']}, {env['date']}.", ""]
    cuda = report["cuda_tests"]
    lines.append("CUDA tests (`pytest -m cuda`): " + (f"{cuda['summary']} ({cuda['seconds']} s)" if cuda["ran"]
                                                        else f"not run ({cuda['reason']})."))
    lines += ["", "| method | case | size | ours ms | ours MiB | peer | peer ms | peer MiB | time ratio | "
                  "memory ratio | goal | pass |", "|" + "---|" * 12]
    for r in report["records"]:
        peer = r["peer"] + (f" ({r['peer_error']})" if r["peer_error"] else "")
        verdict = {True: "pass", False: "FAIL", None: "–"}[r["passed"]]
        if r.get("error"):
            verdict = f"error: {r['error']}"
        lines.append(f"| {r['method']} | {r['case']} | {r['size']} | {_fmt(r['ours_ms'])} | {_fmt(r['ours_mb'])} | "
                     f"{peer} | {_fmt(r['peer_ms'])} | {_fmt(r['peer_mb'])} | {_fmt(r['time_ratio'], 2)} | "
                     f"{_fmt(r['memory_ratio'], 2)} | {r['goal']} | {verdict} |")
    lines += ["", "Wall time per method (s): " + ", ".join(f"{i['method']} {i['seconds']}"
                                                          for i in report["methods"]) + "."]
    lines += ["", "Goals (issue 14): " + "; ".join(f"{m.name}: {m.goal}" for m in METHODS
                                                  if m.name in {i['method'] for i in report["methods"]}) + "."]
    if report["records"] and report["records"][0]["goal_note"]:
        lines.append(f"Pass/fail: {report['records'][0]['goal_note']}; '–' = not checked.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=("tiny", "paper"), default=None,
                   help="paper: the papers' shapes (default on CUDA); tiny: seconds per method (default on CPU)")
    p.add_argument("--out", default="bench", help="output folder (results.json, results.md, raw/)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--methods", default="", help="comma-separated subset of " + ",".join(m.name for m in METHODS))
    p.add_argument("--budget_scale", type=float, default=1.0, help="multiply every per-method time budget")
    p.add_argument("--cuda_tests", choices=("auto", "skip"), default="auto",
                   help="auto: run `pytest -m cuda` first when a GPU is present")
    args = p.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda was asked for but CUDA is not available")
    size = args.size or ("paper" if device == "cuda" else "tiny")
    wanted = [s for s in args.methods.split(",") if s]
    unknown = sorted(set(wanted) - {m.name for m in METHODS})
    if unknown:
        p.error(f"unknown method(s) {unknown}; known: {', '.join(m.name for m in METHODS)}")
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "raw").mkdir(exist_ok=True)
    # bench.sh picks $PYTHON: the interpreter running this script, so `PYTHON=python3 make bench` holds throughout
    env = {**os.environ, "PYTHON": sys.executable, "BENCH_OUT": str(out_dir)}

    cuda_tests = (run_cuda_tests(env, 180) if args.cuda_tests == "auto" and device == "cuda"
                  else {"ran": False, "reason": "no CUDA device" if device != "cuda" else "--cuda_tests skip"})
    records, infos = [], []
    for m in METHODS:
        if wanted and m.name not in wanted:
            continue
        print(f"[bench_all] {m.name} ({size}, {device}) ...", flush=True)
        recs, info = run_method(m, size, device, out_dir, env, args.budget_scale)
        records += recs
        infos.append(info)
        print(f"[bench_all] {m.name}: {len(recs)} case(s) in {info['seconds']} s", flush=True)
    command = " ".join([Path(sys.executable).name, "-m", "common.bench_all", *(argv or sys.argv[1:])])
    report = {"size": size, "device": device, "cuda_tests": cuda_tests, "records": records, "methods": infos,
              "env": {"device": device_name(device), "torch": torch.__version__, "python": platform.python_version(),
                      "date": time.strftime("%Y-%m-%d"), "command": command}}
    (out_dir / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    md = format_markdown(report)
    (out_dir / "results.md").write_text(md)
    print(md)
    print(f"wrote {out_dir / 'results.json'} and {out_dir / 'results.md'}")
    return report


if __name__ == "__main__":
    main()
