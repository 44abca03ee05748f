"""Export on hostile inputs: each is one clear error naming the file, option or layer, and no
output file (or temp file) is left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from pipeline.detector.checkpoint import save_detector
from pipeline.export import ExportError, export_model, main, write_onnx
from pipeline.runstate import CheckpointError
from tests.detector.train_helpers import one_thread
from tests.export.helpers import CLASSES, tiny_model

REPO = Path(__file__).resolve().parents[2]


@torch.library.custom_op("sod_export_test::twice", mutates_args=())
def _twice(x: torch.Tensor) -> torch.Tensor:
    """An op with a PyTorch kernel but no ONNX translation (like a custom CUDA/Triton kernel)."""
    return x * 2


@_twice.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class CustomKernel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _twice(x)


class DataDependent(nn.Module):
    """Python control flow on tensor values: torch.export cannot trace it."""

    def forward(self, sources: list[torch.Tensor]) -> list[torch.Tensor]:
        return sources if float(sources[0].detach().mean()) > 0 else [s * 2 for s in sources]


def _only(folder: Path, *names: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def test_untraceable_layer_is_named(tmp_path):
    model = tiny_model("ssd")
    model.enhancer = DataDependent()
    with one_thread(), pytest.raises(ExportError) as err:
        export_model(model, "torch-export", tmp_path / "m.pt2", CLASSES)
    msg = str(err.value)
    assert "variant 'ssd': layer enhancer (DataDependent) cannot be traced by torch.export" in msg
    assert "\n" not in msg
    _only(tmp_path)


def test_layer_without_onnx_translation_is_named(tmp_path):
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), CustomKernel())
    program = torch.export.export(net, (torch.rand(2, 4),))
    with one_thread(), pytest.raises(ExportError) as err:
        write_onnx(program, tmp_path / "m.onnx", {"variant": "custom"})
    msg = str(err.value)
    assert msg.startswith("variant 'custom': layer 2 (CustomKernel), op sod_export_test.twice.default has no ONNX")
    assert "No ONNX function found" in msg and "\n" not in msg
    _only(tmp_path)


def test_unknown_format(tmp_path):
    with pytest.raises(ExportError, match=r"--format: 'tflite' is not one of \['onnx', 'torch-export'\]"):
        export_model(tiny_model("ssd"), "tflite", tmp_path / "m.tflite")  # type: ignore[arg-type]
    _only(tmp_path)


def _ckpt(tmp_path: Path, model: nn.Module) -> Path:
    path = tmp_path / "model.pt"
    save_detector(path, model, {"classes": CLASSES})
    return path


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("missing", CheckpointError, "detector checkpoint not found: {ckpt}"),
        ("garbage", CheckpointError, "{ckpt}: corrupt or unreadable detector checkpoint"),
        ("not-a-detector", CheckpointError, "{ckpt}: not a detector checkpoint (missing ['format', 'config'"),
        ("bad-variant", CheckpointError, "{ckpt}: recorded model config is not valid here (model.variant: 'shallow+mdssd'"),
        ("nan-weight", ExportError, "{ckpt}: weight 'head."),
        ("out-is-folder", ExportError, "--out: {out} is a folder; give a file name"),
    ],
)
def test_bad_checkpoint_or_output(tmp_path, case, error, message):
    ckpt, out = tmp_path / "model.pt", tmp_path / "out.onnx"
    if case == "garbage":
        ckpt.write_bytes(b"PK\x03\x04 not really a zip" * 10)
    elif case == "not-a-detector":
        torch.save({"state_dict": {}}, ckpt)
    elif case == "bad-variant":
        _ckpt(tmp_path, tiny_model("ssd"))
        payload = torch.load(ckpt, weights_only=True)
        payload["config"]["variant"] = "shallow+mdssd"
        torch.save(payload, ckpt)
    elif case == "nan-weight":
        model = tiny_model("ssd")
        with torch.no_grad():
            next(p for n, p in model.named_parameters() if n.startswith("head.")).fill_(float("nan"))
        _ckpt(tmp_path, model)
    elif case == "out-is-folder":
        _ckpt(tmp_path, tiny_model("ssd"))
        out.mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    with one_thread(), pytest.raises(error) as err:
        main(["--checkpoint", str(ckpt), "--format", "onnx", "--out", str(out)])
    assert str(err.value).startswith(message.format(ckpt=ckpt, out=out)), str(err.value)
    _only(tmp_path, *before)


@pytest.mark.slow
def test_cli_error_is_one_line(tmp_path):
    """``python -m pipeline.export`` on a missing checkpoint: one ``error:`` line, exit 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.export", "--checkpoint", str(tmp_path / "none.pt"), "--format", "onnx",
         "--out", str(tmp_path / "m.onnx")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: detector checkpoint not found: {tmp_path / 'none.pt'}"
    _only(tmp_path)
