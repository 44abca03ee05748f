"""The options that switch on with CUDA, each run on the CPU once, so a GPU run meets none first.

Covered elsewhere, not repeated here: the fused Triton Soft-NMS kernel under Triton's
interpreter (tests/postprocess/test_soft_nms_fused.py, and the --smoke run in
tests/bench/test_gpu_check.py), DDP with two processes on gloo
(tests/detector/test_ddp.py).  Here: bf16 autocast with channels-last through the
detector's training step and inference path, the training loop itself with its CUDA
options (bf16 / fp16 + GradScaler autocast, channels-last) via ``cuda_options_on_cpu``,
``torch.compile`` (the smallest module), and the pinned-memory DataLoader recipe.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from bench.bench_model import synthetic_batch
from pipeline.detector.data import DetectionDataset, ResumableSampler, make_loader, to_device
from pipeline.detector.model import ModelConfig, build_detector
from pipeline.detector.transforms import build_transform
from pipeline.postprocess import PostprocessConfig, postprocess
from tests.detector.train_helpers import CLASSES, tiny_records

CPU = torch.device("cpu")


def _model(channels_last: bool) -> nn.Module:
    torch.manual_seed(0)
    model = build_detector(ModelConfig(variant="fem", width=0.0625), 3, init_backbone=False).train()
    return model.to(memory_format=torch.channels_last) if channels_last else model


def test_bf16_autocast_channels_last_train_step_matches_fp32() -> None:
    images, boxes, labels = synthetic_batch(2, 300, 4, CPU)
    labels = labels.clamp(max=3)
    fp32 = _model(channels_last=False)
    loss32 = fp32.loss(*fp32(images), boxes, labels)["loss"]
    model = _model(channels_last=True)
    x = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cls, box = model(x)
    assert cls.dtype == box.dtype == torch.bfloat16  # autocast really ran the convolutions in bf16
    loss = model.loss(cls.float(), box.float(), boxes, labels)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and abs(loss.item() - loss32.item()) < 0.05 * loss32.item()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_bf16_channels_last_inference_postprocess() -> None:
    model = _model(channels_last=True).eval()
    x = torch.rand(2, 3, 300, 300).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, deltas = model(x)
        dets = postprocess(*model.decode(logits.float(), deltas.float()), PostprocessConfig(method="soft_linear"))
    assert len(dets) == 2 and all(len(d) > 0 for d in dets)
    assert all(d.boxes.dtype == torch.float32 and ((d.boxes >= 0) & (d.boxes <= 1)).all() for d in dets)


@pytest.mark.slow  # inductor's two C++ compiles: ~15 s on an idle 2-core CPU
def test_torch_compile_on_cpu_matches_eager() -> None:
    """Inductor on the CPU (C++ codegen) for the smallest conv + loss: forward and gradients."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    x = torch.rand(2, 3, 8, 8)

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        return net(x).square().mean()

    torch._dynamo.reset()
    compiled = torch.compile(loss_fn, backend="inductor", dynamic=False)
    eager = loss_fn(x)
    (g_eager,) = torch.autograd.grad(eager, net[0].weight)
    out = compiled(x)
    (g_comp,) = torch.autograd.grad(out, net[0].weight)
    torch.testing.assert_close(out, eager)
    torch.testing.assert_close(g_comp, g_eager)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # dynamo really captured a graph


@pytest.mark.parametrize("workers", [0, 1])
def test_pinned_memory_loader_on_cpu_gives_the_same_batches(make_set, workers: int) -> None:
    """``pin_memory=True`` (the CUDA recipe) on a CPU-only torch: same batches, non-blocking copy."""
    set_dir = make_set(tiny_records(4), CLASSES)
    batches = {}
    for pin in (False, True):
        dataset = DetectionDataset(set_dir, "train", build_transform("ssd", 300), seed=0)
        sampler = ResumableSampler(dataset, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "pin_memory ... no accelerator": pinning needs a GPU
            loader = make_loader(dataset, sampler, 2, workers, pin_memory=pin, seed=0)
            batches[pin] = [to_device(b, CPU, channels_last=True) for b in loader]
    assert len(batches[True]) == 2
    for a, b in zip(batches[False], batches[True], strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
        assert a[0].dtype == torch.float32 and a[0].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_training_loop_runs_its_cuda_options_on_the_cpu(make_set, tmp_path, amp: str) -> None:
    """The loop itself under autocast (bf16; fp16 with its GradScaler) and channels-last, then an exact resume."""
    from pipeline.detector.train import TrainConfig, train

    set_dir = make_set(tiny_records(4), CLASSES)
    cfg = TrainConfig(batch_size=2, steps=2, lr=0.01, warmup_steps=0, num_workers=0, log_every=1,
                      checkpoint_every=1, augmentation="none", amp=amp, channels_last=True)
    model_cfg = ModelConfig(width=0.0625, batch_norm=True)
    out = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(model_cfg, cfg, set_dir, out, device="cpu", progress=False, cuda_options_on_cpu=True)
    # GradScaler skipping a step must not surface as torch's scheduler-order warning
    assert not [w for w in caught if "lr_scheduler.step" in str(w.message)]
    assert len(result.history) == 2 and all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert state["fingerprint"]["params"]["run.cuda_options"] is True
    # a plain CPU run differs in what determines the result, so it must not resume this checkpoint
    plain = train(model_cfg, cfg, set_dir, out, device="cpu", progress=False)
    assert [h["step"] for h in plain.history][0] == 1
