"""One prepared GPU check: every speed target measured in one bounded run, one JSON, one table.

    python -m bench.gpu_check --out gpu_check.json           # a GPU window: <= 8 min on one H100/H200
    python -m bench.gpu_check --out smoke.json --smoke       # every code path on tiny shapes, CPU, seconds

Parts, in this order, each with its own time budget (``--budget part=seconds``); the
whole run stops at ``--deadline`` with what it has measured:

  softnms_correctness  fused Triton Soft-NMS vs the torch loop vs the per-box Python
                       reference, on the device (random cases + the real 8,732 x 20 shape,
                       linear and Gaussian): mismatches and max score differences
  softnms_speed        Soft-NMS (fused, torch loop) vs torchvision batched hard NMS, ms/img
  infer                end to end (forward + decode + Soft-NMS) at batch 1/32/64 vs
                       torchvision ssd300_vgg16 with its own post-processing, img/s
  sr                   SR inference (MSRResNet x4, tiled), output MP/s
  coco                 COCO evaluation backends on a synthetic COCO-val-sized workload
                       (only where pycocotools / faster-coco-eval and pyarrow are installed)
  train                training step (bf16 autocast, channels-last; eager and torch.compile)
                       of ssd, shallow, fem, atss, mdssd vs torchvision ssd300_vgg16, batch
                       32 and 64, fed from uint8 batches in (pinned) host memory, img/s

Needs only torch, torchvision, triton and numpy.  The JSON is rewritten atomically after
every measurement, so a kill leaves a valid file; a watchdog ends the process shortly
after the deadline even inside a long compile.  First calls (compile, cuDNN autotune) are
reported separately as ``first_call_s`` and never enter a rate.  On the CPU the fused
kernel runs under Triton's interpreter (``TRITON_INTERPRET=1``, set before triton loads).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: python bench/gpu_check.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import Timing, device_name, time_calls, versions  # noqa: E402
from pipeline.atomic import write_json  # noqa: E402

SCHEMA = "gpu_check/1"
T0 = time.perf_counter()
VARIANTS = ("ssd", "shallow", "fem", "atss", "mdssd")
STATUSES = ("running", "ok", "skipped", "error", "cut")  # cut: stopped at its budget or the deadline
BUDGETS = {"softnms_correctness": 45.0, "softnms_speed": 25.0, "infer": 60.0, "sr": 20.0, "coco": 20.0, "train": 280.0}
TARGETS = {"train": 4.0, "softnms": 2.0, "infer": {1: 250.0, 32: 2000.0}}
SMOKE_COMPILE = (
    "skipped in --smoke: inductor needs > 250 s for the SSD step on a 2-core CPU (measured); "
    "torch.compile on the CPU is covered by tests/test_cpu_paths.py"
)


@dataclass(frozen=True)
class Plan:
    """Shapes and repeat counts of one run."""

    train_batches: tuple[int, ...]
    infer_batches: tuple[int, ...]
    variants: tuple[str, ...]
    width: float  # our VGG width (1.0 = torchvision's)
    iters: int  # timed calls per measurement (fewer when its budget runs out)
    warmup: int  # untimed calls, the first reported as first_call_s
    random_cases: tuple[tuple[int, int, int], ...]  # (images, anchors, classes)
    real_images: int  # images of the real-shape case (8,732 anchors)
    top_k: int  # Soft-NMS detections kept per image = greedy steps (smoke: few, Triton's interpreter is slow)
    real_classes: int  # its classes (20: VOC)
    infer_classes: int
    reference_amp: bool  # bf16 autocast for torchvision's model too (off in smoke: bf16 VGG16 crawls on a CPU)
    softnms_batch: int
    speed_case: tuple[int, int, int] | None  # Soft-NMS timing input (images, anchors, classes); None: the real shape
    reference_batch: int | None  # torchvision's training batch when not ours (smoke: its VGG16 is the cost)
    sr: tuple[tuple[int, int, tuple[int, int], int], ...]  # (num_feat, num_block, LR (h, w), images)
    coco_images: int
    compile_backend: str | None  # None: no torch.compile
    compile_estimate_s: float  # assumed cost of a first compile before one was measured


FULL = Plan(
    train_batches=(32, 64), infer_batches=(1, 32, 64), variants=VARIANTS, width=1.0, iters=10, warmup=3,
    random_cases=((4, 300, 3), (2, 2000, 4), (8, 120, 2)), real_images=8, top_k=200, real_classes=20, infer_classes=20,
    reference_amp=True, softnms_batch=32, speed_case=None, reference_batch=None,
    sr=((32, 4, (80, 107), 16), (64, 16, (375, 500), 4)), coco_images=5000,
    compile_backend="inductor", compile_estimate_s=60.0,
)  # fmt: skip
SMOKE = Plan(
    train_batches=(2,), infer_batches=(1,), variants=VARIANTS, width=0.0625, iters=1, warmup=0,
    random_cases=((2, 40, 2),), real_images=1, top_k=8, real_classes=1, infer_classes=2,
    reference_amp=False, softnms_batch=1, speed_case=(1, 40, 2), reference_batch=1,
    sr=((8, 1, (24, 32), 2),), coco_images=10, compile_backend=None, compile_estimate_s=0.0,
)  # fmt: skip


class Skip(Exception):
    """A part or measurement cannot run here (reason in the message)."""


class Clock:
    """Seconds left to a part: its own budget, never past the global deadline."""

    def __init__(self, budget_s: float, deadline: float) -> None:
        self.end = min(time.perf_counter() + budget_s, deadline)

    def left(self) -> float:
        return self.end - time.perf_counter()

    def share(self, pending: int) -> float:
        """An even share of what is left among ``pending`` measurements."""
        return max(0.0, self.left()) / max(1, pending)


@dataclass
class Run:
    """The run's document, written atomically to ``out`` after every measurement."""

    device: torch.device
    plan: Plan
    out: Path
    deadline: float  # perf_counter time
    doc: dict[str, Any]
    lock: threading.Lock

    def save(self) -> None:
        with self.lock:
            self.doc["elapsed_s"] = round(time.perf_counter() - T0, 2)
            write_json(self.out, self.doc)

    def row(self, part: str, case: str, value: float, unit: str, reference: str | None = None,
            reference_value: float | None = None, target: str | None = None, met: bool | None = None,
            speed: bool = True, **extra: Any) -> None:
        """One figure; ``ratio`` = value / reference_value.  A speed target is judged on CUDA only."""
        ratio = value / reference_value if reference_value else None
        self.doc["rows"].append({
            "part": part, "case": case, "value": _num(value), "unit": unit, "reference": reference,
            "reference_value": _num(reference_value), "ratio": _num(ratio), "target": target,
            "target_met": met if (not speed or self.device.type == "cuda") else None, **extra,
        })  # fmt: skip
        self.save()


def _num(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else float(f"{x:.{digits}g}")


# ---------------------------------------------------------------- Soft-NMS


def random_case(n: int, a: int, c: int, seed: int, ties: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes (n, a, 4) in clusters (heavy overlap, nested and identical boxes) and scores (n, a, c)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n, 6, 2, generator=g) * 0.8 + 0.1
    pick = torch.randint(0, 6, (n, a), generator=g)
    xy = torch.gather(centres, 1, pick[..., None].expand(-1, -1, 2)) + torch.randn(n, a, 2, generator=g) * 0.03
    wh = 0.02 + torch.rand(n, a, 2, generator=g) * 0.2
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], -1).clamp(0, 1)
    boxes[:, a // 2 : a // 2 + 3] = boxes[:, a // 2 : a // 2 + 1]  # identical boxes
    scores = torch.rand(n, a, c, generator=g) ** 3
    if ties:
        scores = (scores * 20).round() / 20  # many exact ties between overlapping boxes
    return boxes.float(), scores.float()


Canon = list[list[tuple[int, tuple[float, ...], float]]]


def canon(dets: list) -> Canon:
    """Detections -> per image [(label, box, score)]."""
    return [list(zip(d.labels.tolist(), map(tuple, d.boxes.tolist()), d.scores.tolist(), strict=True)) for d in dets]


def canon_reference(ref: list[list[tuple[int, int, float]]], boxes: np.ndarray) -> Canon:
    """The reference's per image [(class, anchor, score)] -> [(label, box, score)]."""
    return [[(c, tuple(float(v) for v in boxes[i, a]), s) for c, a, s in r] for i, r in enumerate(ref)]


def compare(a: Canon, b: Canon, tol: float = 1e-5) -> dict[str, float | int]:
    """Detections paired by (label, box): unpaired ones and pairs whose scores differ > ``tol``
    are mismatches; ``max_score_diff`` over the pairs; ``sorted``: ``a`` in descending score."""
    mismatches, worst, ordered = 0, 0.0, True
    for da, db in zip(a, b, strict=True):
        ordered &= all(x[2] >= y[2] for x, y in zip(da, da[1:], strict=False))
        groups: dict[tuple, list[list[float]]] = {}
        for side, dets in enumerate((da, db)):
            for label, box, score in dets:
                groups.setdefault((label, box), [[], []])[side].append(score)
        for sa, sb in groups.values():
            sa.sort(reverse=True)
            sb.sort(reverse=True)
            mismatches += abs(len(sa) - len(sb))
            for x, y in zip(sa, sb, strict=False):
                worst = max(worst, abs(x - y))
                mismatches += abs(x - y) > tol
    return {"mismatches": int(mismatches), "max_score_diff": float(worst), "sorted": bool(ordered)}


def part_softnms_correctness(run: Run, entry: dict, clock: Clock) -> None:
    from bench.bench_softnms import make_inputs
    from pipeline.postprocess import PostprocessConfig, soft_nms, soft_nms_triton
    from tests.postprocess.reference import reference_postprocess

    dev = run.device
    if not soft_nms_triton.available(dev):
        raise Skip(f"fused kernel unavailable on {dev} (triton {'missing' if soft_nms_triton.triton is None else 'present'}"
                   f"{', interpreter off' if dev.type == 'cpu' else ''})")
    cases = [(f"random {n}x{a}x{c}{' ties' if i % 2 else ''}", *random_case(n, a, c, seed=i, ties=bool(i % 2)))
             for i, (n, a, c) in enumerate(run.plan.random_cases)]
    n, c = run.plan.real_images, run.plan.real_classes
    cases.append((f"real {n}x8732x{c}", *make_inputs(n, c, seed=0)))
    entry["cases"] = []
    for name, boxes, scores in cases:
        for method in ("soft_linear", "soft_gaussian"):
            if clock.left() <= 0:
                entry["status"] = "cut"
                return
            cfg = PostprocessConfig(method=method, top_k=run.plan.top_k)
            b, s = boxes.to(dev), scores.to(dev)
            fused = canon(soft_nms(b, s, cfg, backend="fused"))
            loop = canon(soft_nms(b, s, cfg, backend="torch"))
            ref = canon_reference(reference_postprocess(
                boxes.numpy(), scores.numpy(), method, cfg.score_threshold, cfg.iou_threshold, cfg.sigma,
                cfg.top_k, cfg.min_score), boxes.numpy())  # fmt: skip
            res = {"case": name, "method": method, "detections": sum(map(len, ref)),
                   "fused_vs_torch": compare(fused, loop), "fused_vs_reference": compare(fused, ref),
                   "torch_vs_reference": compare(loop, ref)}  # fmt: skip
            entry["cases"].append(res)
            bad = sum(res[k]["mismatches"] + (not res[k]["sorted"]) for k in ("fused_vs_torch", "fused_vs_reference"))
            worst = max(res[k]["max_score_diff"] for k in ("fused_vs_torch", "fused_vs_reference", "torch_vs_reference"))
            run.row("softnms_correctness", f"{name} {method}", bad, "mismatches", target="0",
                    met=bad == 0 and res["torch_vs_reference"]["mismatches"] == 0, speed=False, max_score_diff=_num(worst))
    entry["kernel_ok"] = all(
        r[k]["mismatches"] == 0 and r[k]["sorted"]
        for r in entry["cases"] for k in ("fused_vs_torch", "fused_vs_reference", "torch_vs_reference")
    )  # fmt: skip


def part_softnms_speed(run: Run, entry: dict, clock: Clock) -> None:
    from bench.bench_softnms import make_inputs
    from pipeline.postprocess import PostprocessConfig, postprocess, soft_nms, soft_nms_triton

    dev, n = run.device, run.plan.softnms_batch
    if run.plan.speed_case is None:
        boxes, scores = make_inputs(n, run.plan.real_classes, seed=0)
    else:
        n = run.plan.speed_case[0]
        boxes, scores = random_case(*run.plan.speed_case, seed=0, ties=False)
    boxes, scores = boxes.to(dev), scores.to(dev)
    entry["input"] = f"{tuple(scores.shape)} (images, anchors, classes)"
    entry["candidates_above_0.01_per_image"] = float((scores > 0.01).sum((1, 2)).float().mean())
    runs: list[tuple[str, str, Callable]] = [("hard NMS (torchvision batched_nms)", "nms", postprocess)]
    for m in ("soft_linear", "soft_gaussian"):
        if soft_nms_triton.available(dev):
            runs.append((f"{m} fused", m, lambda b, s, c: soft_nms(b, s, c, backend="fused")))
        runs.append((f"{m} torch loop", m, lambda b, s, c: soft_nms(b, s, c, backend="torch")))
    hard = None
    for i, (name, method, fn) in enumerate(runs):
        cfg = PostprocessConfig(method=method, top_k=run.plan.top_k)
        t = time_calls(lambda fn=fn, cfg=cfg: fn(boxes, scores, cfg), dev, run.plan.iters * 5, run.plan.warmup,
                       clock.share(len(runs) - i))
        ms = 1e3 * t.s_per_call / n
        hard = hard or ms
        fused = name.endswith("fused")
        run.row("softnms_speed", f"{name}, batch {n}", ms, "ms/img", "hard NMS" if i else None, hard if i else None,
                target=f"<= {TARGETS['softnms']:g}x hard NMS" if fused else None,
                met=ms / hard <= TARGETS["softnms"] if fused else None, first_call_s=_num(t.first_call_s), calls=t.calls)
    if not soft_nms_triton.available(dev):
        entry["fused"] = "skipped: fused kernel unavailable on this device"


# ---------------------------------------------------------------- inference, SR, COCO


def part_infer(run: Run, entry: dict, clock: Clock) -> None:
    from bench.bench_infer import inference_runners
    from pipeline.postprocess import soft_nms_triton

    dev = run.device
    run_ours, run_tv = inference_runners(run.plan.infer_classes, dev, "soft_linear", fast=True, width=run.plan.width,
                                         fast_reference=run.plan.reference_amp)
    entry.update(postprocess="soft_linear", classes=run.plan.infer_classes, soft_nms_backend="fused" if dev.type == "cuda" and soft_nms_triton.available(dev)
                 else "torch", precision="bf16 autocast, channels_last", width=run.plan.width)
    batches = run.plan.infer_batches
    for i, b in enumerate(batches):
        x = torch.rand(b, 3, 300, 300, device=dev).contiguous(memory_format=torch.channels_last)
        budget = clock.share(len(batches) - i) / 2
        tv = time_calls(lambda x=x: run_tv(x), dev, run.plan.iters, run.plan.warmup, budget)
        ours = time_calls(lambda x=x: run_ours(x), dev, run.plan.iters, run.plan.warmup, budget)
        goal = TARGETS["infer"].get(b)
        run.row("infer", f"ours + Soft-NMS, batch {b}", ours.rate(b), "img/s", "torchvision ssd300_vgg16",
                tv.rate(b), target=f">= {goal:g} img/s" if goal else None,
                met=ours.rate(b) >= goal if goal else None, first_call_s=_num(ours.first_call_s),
                reference_first_call_s=_num(tv.first_call_s), calls=ours.calls)


def part_sr(run: Run, entry: dict, clock: Clock) -> None:
    from bench.bench_sr import infer_throughput
    from pipeline.sr.basicsr_compat import import_basicsr

    try:
        import_basicsr()  # the generator is basicsr's MSRResNet
    except ImportError as exc:
        raise Skip(f"not installed: {exc.name or 'basicsr'}") from exc

    amp = torch.bfloat16 if run.device.type == "cuda" else None
    entry["precision"] = "bf16 autocast" if amp else "fp32"
    for nf, nb, hw, n in run.plan.sr:
        if clock.left() <= 0:
            entry["status"] = "cut"
            return
        r = infer_throughput(nf, nb, run.device.type, hw, n, tile=128, batch=8, amp_dtype=amp)
        run.row("sr", f"{r['model']}, LR {hw[0]}x{hw[1]}, {n} images", r["out_mp_per_s"], "output MP/s",
                seconds=r["seconds"])


def coco_workload(images: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """COCO-val-like GT (80 classes, ~7 boxes/img) and 100 detections per image, near the GT."""
    rng = np.random.default_rng(seed)
    imgs, anns, dets = [], [], []
    for i in range(1, images + 1):
        imgs.append({"id": i, "width": 640, "height": 480, "file_name": f"{i}.jpg"})
        k = int(rng.integers(1, 15))
        wh = np.exp(rng.uniform(np.log(4), np.log(400), (k, 2)))
        xy = rng.uniform(0, 1, (k, 2)) * (np.array([640, 480]) - wh).clip(1)
        cls = rng.integers(1, 81, k)
        for (x, y), (w, h), c in zip(xy, wh, cls, strict=True):
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c), "bbox": [x, y, w, h],
                         "area": float(w * h), "iscrowd": 0})  # fmt: skip
        src = rng.integers(0, k, 100)
        jitter = rng.normal(0, 0.1, (100, 4)) * np.concatenate([wh[src], wh[src]], 1)
        boxes = np.concatenate([xy[src], wh[src]], 1) + jitter
        labels = np.where(rng.random(100) < 0.7, cls[src], rng.integers(1, 81, 100))
        for box, c, s in zip(boxes.clip(0.5), labels, rng.random(100), strict=True):
            dets.append({"image_id": i, "category_id": int(c), "bbox": [float(v) for v in box], "score": float(s)})
    gt = {"images": imgs, "annotations": anns, "categories": [{"id": c, "name": f"c{c}"} for c in range(1, 81)]}
    return gt, dets


def part_coco(run: Run, entry: dict, clock: Clock) -> None:
    try:
        from pipeline.evaluation import coco
    except ImportError as exc:
        raise Skip(f"not installed: {exc.name}") from exc
    backends = []
    for name in ("pycocotools", "faster"):
        try:
            coco._load(name)
            backends.append(name)
        except ImportError as exc:
            entry[f"{name}"] = f"skipped: not installed ({exc.name})"
    if not backends:
        raise Skip("not installed: pycocotools, faster-coco-eval")
    full = run.plan.coco_images
    probe_n = max(1, full // 10)
    gt_probe, dt_probe = coco_workload(probe_n)
    ref = None
    for name in backends:  # the first one installed is the reference
        t0 = time.perf_counter()
        coco.coco_evaluate(gt_probe, dt_probe, name)
        per_image = (time.perf_counter() - t0) / probe_n
        n, extrapolated = probe_n, True
        if per_image * full < clock.left() / 2:
            gt, dt = coco_workload(full)
            t0 = time.perf_counter()
            coco.coco_evaluate(gt, dt, name)
            per_image, n, extrapolated = (time.perf_counter() - t0) / full, full, False
        seconds = per_image * full
        first = ref is None
        ref = ref or seconds
        run.row("coco", f"{name}, {full} images x 100 detections", seconds, "s", None if first else backends[0],
                None if first else ref, measured_images=n, extrapolated=extrapolated)


# ---------------------------------------------------------------- training


def uint8_batches(n: int, device: torch.device, pool: int = 2) -> Iterator[tuple[torch.Tensor, ...]]:
    """Endless batches fed as training feeds them: uint8 images and padded GT in (pinned) host
    memory, copied to ``device`` non-blocking each step, images channels-last."""
    from bench.bench_model import synthetic_batch

    host = []
    for seed in range(pool):
        images, boxes, labels = synthetic_batch(n, 300, 8, torch.device("cpu"), seed=seed)
        batch = ((images * 255).round().to(torch.uint8), boxes, labels)
        host.append(tuple(t.pin_memory() for t in batch) if device.type == "cuda" else batch)
    i = 0
    while True:
        images, boxes, labels = (t.to(device, non_blocking=True) for t in host[i % pool])
        yield images.contiguous(memory_format=torch.channels_last), boxes, labels
        i += 1


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _time_step(step: Callable, feed: Iterator, dev: torch.device, iters: int, warmup: int, budget: float) -> Timing:
    return time_calls(lambda: step(*next(feed)), dev, iters, warmup, budget)


def part_train(run: Run, entry: dict, clock: Clock) -> None:
    from bench.bench_model import (
        NUM_CLASSES,
        detector_train_step,
        torchvision_reference,
        torchvision_train_step,
    )
    from pipeline.detector.model import ModelConfig, build_detector

    dev, plan = run.device, run.plan
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    entry.update(precision="bf16 autocast, channels_last", reference_bf16=plan.reference_amp, width=plan.width, data="uint8 batches in host memory "
                 f"({'pinned' if dev.type == 'cuda' else 'not pinned: CPU'}), copied per step", skipped=[])

    def autocast(enabled: bool = True) -> contextlib.AbstractContextManager:
        return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=enabled)

    def ref_autocast() -> contextlib.AbstractContextManager:
        return autocast(plan.reference_amp)

    def measure(make_step: Callable, batch: int, budget: float, warmup: int = plan.warmup) -> Timing:
        t = _time_step(make_step(), uint8_batches(batch, dev), dev, plan.iters, warmup, budget)
        _free(dev)  # the step (model, optimizer, compiled graph) is gone with _time_step's frame
        return t

    def model(variant: str) -> torch.nn.Module:
        torch.manual_seed(0)
        m = build_detector(ModelConfig(variant=variant, width=plan.width), NUM_CLASSES, init_backbone=False)
        return m.to(dev, memory_format=torch.channels_last).train()

    eager_units = len(plan.train_batches) * (len(plan.variants) + 1)
    share = 0.4 if plan.compile_backend else 1.0  # eager first, the rest of the budget for compiling
    reference: dict[int, float] = {}
    done = 0
    for b in plan.train_batches:
        rb = plan.reference_batch or b
        tv = measure(lambda: torchvision_train_step(torchvision_reference(dev, torch.channels_last), ref_autocast), rb,
                     clock.share(eager_units - done) * share)
        done += 1
        reference[b] = tv.rate(rb)
        run.row("train", f"torchvision ssd300_vgg16, batch {rb}", tv.rate(rb), "img/s", first_call_s=_num(tv.first_call_s))
        for v in plan.variants:
            t = measure(lambda v=v: detector_train_step(model(v), autocast), b, clock.share(eager_units - done) * share)
            done += 1
            run.row("train", f"{v} eager, batch {b}", t.rate(b), "img/s", "torchvision ssd300_vgg16", reference[b],
                    target=f">= {TARGETS['train']:g}x torchvision", met=t.rate(b) / reference[b] >= TARGETS["train"],
                    first_call_s=_num(t.first_call_s), calls=t.calls)
    if plan.compile_backend is None:
        entry["compile"] = SMOKE_COMPILE
        return
    entry["compile"] = f"torch.compile(forward + loss, backend={plan.compile_backend!r}, dynamic=False)"
    units = [(v, b) for v in plan.variants[:1] for b in plan.train_batches]
    units += [(v, b) for b in plan.train_batches for v in plan.variants[1:]]
    cost = plan.compile_estimate_s
    for i, (v, b) in enumerate(units):
        if clock.left() < 1.2 * cost:
            entry["skipped"] += [f"{v} compiled, batch {b}: budget ({clock.left():.0f} s left, a compile takes ~{cost:.0f} s)"
                                 for v, b in units[i:]]
            entry["status"] = "cut"
            return
        torch._dynamo.reset()  # fresh caches: no recompile limit carried over from the last model
        kwargs = {"backend": plan.compile_backend, "dynamic": False}
        t = measure(lambda v=v, kwargs=kwargs: detector_train_step(model(v), autocast, kwargs), b,
                    max(1.0, clock.left() - cost * (len(units) - i - 1)), warmup=max(1, plan.warmup))  # compile: never timed
        cost = max(cost if i else 0.0, t.first_call_s)
        run.row("train", f"{v} compiled, batch {b}", t.rate(b), "img/s", "torchvision ssd300_vgg16", reference[b],
                target=f">= {TARGETS['train']:g}x torchvision", met=t.rate(b) / reference[b] >= TARGETS["train"],
                first_call_s=_num(t.first_call_s), compile_s=_num(t.first_call_s), calls=t.calls)


PARTS: dict[str, Callable[[Run, dict, Clock], None]] = {
    "softnms_correctness": part_softnms_correctness,
    "softnms_speed": part_softnms_speed,
    "infer": part_infer,
    "sr": part_sr,
    "coco": part_coco,
    "train": part_train,
}


# ---------------------------------------------------------------- run, report


def run_part(run: Run, name: str, budget: float) -> None:
    """Run one part inside its budget; record ok / skipped / cut / error and its seconds."""
    entry: dict[str, Any] = {"status": "running", "budget_s": budget}
    run.doc["parts"][name] = entry
    run.doc["current_part"] = name
    run.save()
    t0 = time.perf_counter()
    clock = Clock(budget, run.deadline)
    try:
        if clock.left() < 1.0:
            raise Skip("global deadline reached")
        PARTS[name](run, entry, clock)
        entry["status"] = "cut" if entry["status"] == "cut" else "ok"
    except Skip as exc:
        entry.update(status="skipped", reason=str(exc))
    except Exception as exc:  # one part's failure must not cost the window's other figures
        entry.update(status="error", error=f"{type(exc).__name__}: {exc}".splitlines()[0][:500],
                     traceback=traceback.format_exc()[-3000:])
    entry["seconds"] = round(time.perf_counter() - t0, 2)
    _free(run.device)
    run.save()


def table(doc: dict) -> str:
    """Markdown: one line per figure, then each part's status."""
    lines = [f"GPU check on **{doc['device']['name']}** ({doc['status']}, {doc['elapsed_s']} s"
             f"{', smoke' if doc['smoke'] else ''}); torch {doc['versions']['torch']}", "",
             "| part | case | value | unit | reference | ratio | target |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in doc["rows"]:
        ref = "" if r["reference"] is None else f"{r['reference']} {r['reference_value']:g}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.3g}x"
        met = {True: " (met)", False: " (MISSED)", None: ""}[r["target_met"]]
        target = f"{r['target'] or ''}{met}"
        lines.append(f"| {r['part']} | {r['case']} | {r['value']:.4g} | {r['unit']} | {ref} | {ratio} | {target} |")
    lines.append("")
    for name, p in doc["parts"].items():
        why = p.get("reason") or p.get("error") or "; ".join(p.get("skipped", [])) or p.get("compile", "")
        lines.append(f"- {name}: {p['status']} in {p.get('seconds', '?')} s (budget {p['budget_s']:g} s){': ' + why if why else ''}")
    est = doc.get("estimate")
    if est:
        lines.append(f"- full GPU run: at most {est['full_run_bound_s']:g} s (sum of the part budgets; "
                     f"this run's parts took {est['this_run_s']:g} s)")
    return "\n".join(lines)


def validate(doc: Any) -> list[str]:
    """Problems with a gpu_check JSON document (empty: it follows the schema)."""
    errs: list[str] = []

    def need(cond: bool, msg: str) -> None:
        if not cond:
            errs.append(msg)

    if not isinstance(doc, dict):
        return ["document is not a JSON object"]
    need(doc.get("schema") == SCHEMA, f"schema: expected {SCHEMA!r}")
    need(doc.get("status") in ("running", "complete", "deadline", "killed"), "status: unknown value")
    need(isinstance(doc.get("smoke"), bool), "smoke: not a bool")
    need(isinstance(doc.get("elapsed_s"), int | float), "elapsed_s: not a number")
    dev = doc.get("device", {})
    need(isinstance(dev, dict) and isinstance(dev.get("name"), str) and dev.get("type") in ("cpu", "cuda"),
         "device: needs name and type cpu|cuda")
    vers = doc.get("versions", {})
    need(isinstance(vers, dict) and all(isinstance(vers.get(k), str) for k in ("python", "torch")),
         "versions: python and torch needed")
    parts = doc.get("parts")
    need(isinstance(parts, dict) and set(parts) <= set(PARTS), "parts: unknown part names")
    for name, p in (parts or {}).items():
        need(isinstance(p, dict) and p.get("status") in STATUSES, f"parts.{name}.status: unknown value")
        need(isinstance(p.get("budget_s"), int | float), f"parts.{name}.budget_s: not a number")
        if p.get("status") == "skipped":
            need(isinstance(p.get("reason"), str) and p["reason"] != "", f"parts.{name}: skipped without a reason")
        if p.get("status") == "error":
            need(isinstance(p.get("error"), str), f"parts.{name}: error without a message")
    for i, r in enumerate(doc.get("rows", [])):
        where = f"rows[{i}]"
        need(r.get("part") in PARTS, f"{where}.part: unknown")
        need(isinstance(r.get("case"), str) and isinstance(r.get("unit"), str), f"{where}: case/unit not strings")
        need(isinstance(r.get("value"), int | float) and math.isfinite(r["value"]), f"{where}.value: not finite")
        ref = r.get("reference_value")
        need((ref is None) == (r.get("ratio") is None), f"{where}: ratio without reference or reverse")
        if ref:
            need(math.isclose(r["ratio"], r["value"] / ref, rel_tol=1e-3), f"{where}.ratio: not value / reference")
        need(r.get("target_met") in (True, False, None), f"{where}.target_met: not a bool or null")
    need(isinstance(doc.get("rows"), list), "rows: not a list")
    return errs


def _watchdog(run: Run, grace: float) -> threading.Timer:
    """End the process ``grace`` s after the deadline (e.g. inside a compile), JSON marked killed."""

    def fire() -> None:
        run.doc["status"] = "killed"
        run.doc["killed_in"] = run.doc.get("current_part")
        with contextlib.suppress(Exception):
            run.save()
            print(table(run.doc), flush=True)
        os._exit(3)

    timer = threading.Timer(max(0.0, run.deadline - time.perf_counter()) + grace, fire)
    timer.daemon = True
    timer.start()
    return timer


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="the JSON document (written atomically, often)")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes, 1 step each: every code path in seconds")
    ap.add_argument("--device", default="auto", help="auto (CUDA when available) | cpu | cuda")
    ap.add_argument("--deadline", type=float, default=480.0, help="seconds from start: stop cleanly (default 480)")
    ap.add_argument("--grace", type=float, default=20.0, help="seconds past the deadline before the watchdog kills")
    ap.add_argument("--budget", action="append", default=[], metavar="PART=SECONDS", help="override a part's budget")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset, in the fixed order")
    ap.add_argument("--compile-backend", default=None, help="torch.compile backend (full: inductor; none: no compile)")
    args = ap.parse_args(argv)
    budgets = dict(BUDGETS)
    for item in args.budget:
        name, _, value = item.partition("=")
        if name not in BUDGETS or not value.replace(".", "", 1).isdigit():
            ap.error(f"--budget {item!r}: expected PART=SECONDS with PART one of {list(BUDGETS)}")
        budgets[name] = float(value)
    parts = [p for p in args.parts.split(",") if p]
    if unknown := sorted(set(parts) - set(PARTS)):
        ap.error(f"--parts: unknown {unknown}; known {list(PARTS)}")
    args.budgets, args.parts = budgets, [p for p in PARTS if p in parts]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cpu":
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton loads: the fused kernel, interpreted
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    plan = SMOKE if args.smoke else FULL
    if args.compile_backend is not None:
        from dataclasses import replace

        plan = replace(plan, compile_backend=None if args.compile_backend == "none" else args.compile_backend,
                       compile_estimate_s=plan.compile_estimate_s or 30.0)
    budgets = {p: args.budgets[p] for p in args.parts}
    doc: dict[str, Any] = {
        "schema": SCHEMA, "status": "running", "smoke": args.smoke, "elapsed_s": 0.0,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": {"name": device_name(device), "type": device.type,
                   "capability": list(torch.cuda.get_device_capability(device)) if device.type == "cuda" else None},
        "versions": versions(), "plan": asdict(plan), "deadline_s": args.deadline, "budgets_s": budgets,
        "targets": {"train": "each variant >= 4x torchvision ssd300_vgg16 img/s", "softnms": "fused <= 2x hard NMS",
                    "infer": ">= 250 img/s at batch 1, >= 2000 img/s at batch 32 (Soft-NMS)"},
        "parts": {}, "rows": [],
    }  # fmt: skip
    run = Run(device, plan, args.out, T0 + args.deadline, doc, threading.Lock())
    run.save()
    timer = _watchdog(run, args.grace)
    for name in args.parts:
        run_part(run, name, budgets[name])
    timer.cancel()
    doc.pop("current_part", None)
    doc["status"] = "complete" if time.perf_counter() < run.deadline else "deadline"
    doc["estimate"] = {"full_run_bound_s": min(args.deadline, sum(BUDGETS.values())),
                       "this_run_s": round(sum(p["seconds"] for p in doc["parts"].values()), 1),
                       "this_run_part_s": {k: p["seconds"] for k, p in doc["parts"].items()}}
    kernel_ok = doc["parts"].get("softnms_correctness", {}).get("kernel_ok", True)
    doc["kernel_ok"] = kernel_ok
    run.save()
    print(table(doc))
    if problems := validate(json.loads(args.out.read_text())):
        print("gpu_check: the JSON does not follow its schema: " + "; ".join(problems), file=sys.stderr)
        return 2
    errors = [k for k, p in doc["parts"].items() if p["status"] == "error"]
    if not kernel_ok or errors:
        print(f"gpu_check: {'fused Soft-NMS differs from the reference; ' if not kernel_ok else ''}"
              f"{'parts failed: ' + ', '.join(errors) if errors else ''}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
