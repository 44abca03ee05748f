"""Export a trained detector for serving: an ONNX file (onnxruntime) or a ``torch.export`` program.

    python -m pipeline.export --checkpoint data/models/detector/model.pt --format onnx --out model.onnx
    sod-export --checkpoint model.pt --format torch-export --out model.pt2

The exported graph is the network plus box decoding (:class:`Decoded`):

* input ``images``: (N, 3, S, S) float32 RGB in [0, 1], N dynamic (the checkpoint's S; the
  ImageNet normalisation is inside the graph);
* outputs ``boxes`` (N, A, 4) xyxy normalised to [0, 1] (multiply by the image's width and
  height) and ``scores`` (N, A, C) softmax class scores without the background column.

NMS runs in the caller: :func:`pipeline.postprocess.postprocess` (hard NMS or Soft-NMS, the
same code evaluation uses).  ``torchvision.ops.nms`` itself does export (ONNX
``NonMaxSuppression``), but Soft-NMS is a sequential decay loop with no ONNX operator, and
an in-graph hard NMS would be a second post-processing that evaluation never scores.
The class names, variant and input size travel in the file (ONNX ``metadata_props``; the
``sod_export.json`` extra file of the ``.pt2``).  After writing, the file is run once on a
random batch and compared with eager PyTorch (``--atol``, default 1e-4).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn

import torch
from torch import Tensor, nn

from pipeline.atomic import atomic_path
from pipeline.errors import PipelineError

Format = Literal["onnx", "torch-export"]
FORMATS: tuple[str, ...] = ("onnx", "torch-export")
INPUT_NAMES = ["images"]
OUTPUT_NAMES = ["boxes", "scores"]
#: Name of the JSON metadata inside a ``.pt2`` (``torch.export.save`` extra file).
META_FILE = "sod_export.json"


class ExportError(PipelineError):
    """The model (or one of its layers) cannot be exported, or the export does not match eager."""


class Decoded(nn.Module):
    """The detector plus decoding: images (N, 3, S, S) in [0, 1] -> boxes (N, A, 4), scores (N, A, C)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.decode(*self.model(images))


def metadata(model: nn.Module, classes: Sequence[str] | None) -> dict[str, Any]:
    """What a server needs beside the graph: variant, input size, classes, output layout."""
    return {
        "variant": model.variant.name,
        "input_size": int(model.config.input_size),
        "num_classes": int(model.num_classes),
        "classes": list(classes) if classes is not None else None,
        "inputs": {"images": "float32 (N, 3, S, S) RGB in [0, 1]"},
        "outputs": {
            "boxes": "float32 (N, A, 4) xyxy normalised to [0, 1]",
            "scores": "float32 (N, A, C) softmax class scores, background removed",
        },
        "nms": "not in the graph: pipeline.postprocess.postprocess (nms / soft_linear / soft_gaussian)",
    }


def _module_names(root: nn.Module) -> dict[int, str]:
    return {id(m): name.removeprefix("model.") for name, m in root.named_modules() if name}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _failing_layer_in_trace(root: nn.Module, exc: BaseException) -> str | None:
    """Innermost module of ``root`` whose ``forward`` is on the failing traceback (non-strict export)."""
    names, layer = _module_names(root), None
    for e in _chain(exc):
        for frame, _ in traceback.walk_tb(e.__traceback__):
            obj = frame.f_locals.get("self")
            if isinstance(obj, nn.Module) and id(obj) in names:
                layer = f"{names[id(obj)]} ({type(obj).__name__})"
    return layer


def _failing_layer_in_graph(program: torch.export.ExportedProgram, exc: BaseException) -> str | None:
    """Layer of the FX node the ONNX translator names (``Error when translating node %name``)."""
    for e in _chain(exc):
        m = re.search(r"translating node %(\w+)", str(e))
        if m is None:
            continue
        node = next((n for n in program.graph.nodes if n.name == m.group(1)), None)
        stack = list((node.meta.get("nn_module_stack") or {}).values()) if node is not None else []
        if stack:
            path, kind = stack[-1]
            return f"{path.removeprefix('model.')} ({str(kind).rsplit('.', 1)[-1]}), op {node.target}"
        return f"op {node.target}" if node is not None else None
    return None


def _summary(exc: BaseException) -> str:
    """The most specific one-line reason in an exception chain."""
    lines = [" ".join(str(e).split()) for e in _chain(exc) if str(e).strip()]
    for line in lines:
        if "No ONNX function found" in line:
            return line
    return lines[-1] if lines else type(exc).__name__


def trace(model: nn.Module, batch: int = 2) -> torch.export.ExportedProgram:
    """``torch.export`` the eval-mode :class:`Decoded` model with a dynamic batch dimension.

    Raises:
        ExportError: naming the layer whose forward could not be traced.
    """
    wrapped = Decoded(model).eval()
    s = int(model.config.input_size)
    example = torch.rand(batch, 3, s, s, device=next(model.parameters()).device)
    dims = ({0: torch.export.Dim("batch", min=1, max=4096)},)
    try:
        return torch.export.export(wrapped, (example,), dynamic_shapes=dims, strict=False)
    except Exception as exc:  # any tracing failure is reported with its layer
        layer = _failing_layer_in_trace(wrapped, exc) or "unknown layer"
        raise ExportError(
            f"variant {model.variant.name!r}: layer {layer} cannot be traced by torch.export: {_summary(exc)}"
        ) from exc


def write_onnx(program: torch.export.ExportedProgram, out: Path, meta: dict[str, Any]) -> None:
    """Translate ``program`` to one self-contained ONNX file (weights inline), atomically."""
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the exporter prints its steps
            onnx_program = torch.onnx.export(
                program, dynamo=True, input_names=INPUT_NAMES, output_names=OUTPUT_NAMES, verbose=False
            )
    except ImportError as exc:
        raise ExportError(f"ONNX export needs onnx and onnxscript ({exc}); pip install '.[export]'") from exc
    except Exception as exc:
        layer = _failing_layer_in_graph(program, exc) or "unknown layer"
        raise ExportError(
            f"variant {meta['variant']!r}: layer {layer} has no ONNX translation: {_summary(exc)}"
        ) from exc
    onnx_program.model.metadata_props.update({k: json.dumps(v) for k, v in meta.items()})
    with atomic_path(out) as tmp:
        onnx_program.save(tmp, external_data=False)


def write_torch_export(program: torch.export.ExportedProgram, out: Path, meta: dict[str, Any]) -> None:
    """``torch.export.save`` the program with ``meta`` as the ``sod_export.json`` extra file, atomically."""
    with atomic_path(out) as tmp:
        torch.export.save(program, tmp, extra_files={META_FILE: json.dumps(meta)})


def onnx_runner(path: str | os.PathLike[str]):  # noqa: ANN201 - returns a callable
    """``images (N,3,S,S) -> (boxes, scores)`` numpy arrays from an onnxruntime CPU session."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ExportError("checking an ONNX file needs onnxruntime: pip install '.[export]'") from exc
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda images: session.run(OUTPUT_NAMES, {INPUT_NAMES[0]: images.detach().cpu().numpy()})


def torch_export_runner(path: str | os.PathLike[str]):  # noqa: ANN201 - returns a callable
    """``images -> (boxes, scores)`` from a saved ``.pt2`` program."""
    module = torch.export.load(str(path)).module()
    return lambda images: [t.detach().cpu().numpy() for t in module(images)]


def max_abs_diff(model: nn.Module, run, batch: int = 3, seed: int = 0) -> float:  # noqa: ANN001
    """Largest |exported - eager| over boxes and scores on a seeded random batch (CPU, float32)."""
    s = int(model.config.input_size)
    images = torch.rand(batch, 3, s, s, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        eager = Decoded(model.eval().cpu())(images)
    got = run(images)
    return max(float((torch.from_numpy(g) - e).abs().max()) for g, e in zip(got, eager, strict=True))


def export_model(
    model: nn.Module, fmt: Format, out: str | os.PathLike[str], classes: Sequence[str] | None = None
) -> dict[str, Any]:
    """Export ``model`` (an SSD variant) to ``out``; returns its metadata.

    Raises:
        ExportError: an unknown format, or a layer that cannot be exported (named).
    """
    if fmt not in FORMATS:
        raise ExportError(f"--format: {fmt!r} is not one of {list(FORMATS)}")
    model = model.eval().cpu()
    meta = metadata(model, classes)
    program = trace(model)
    writer = write_onnx if fmt == "onnx" else write_torch_export
    writer(program, Path(out), meta)
    return meta


def check_finite(model: nn.Module, where: str | os.PathLike[str]) -> None:
    """Refuse weights holding NaN/inf (they export, but every output would be NaN)."""
    for name, t in model.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ExportError(f"{where}: weight {name!r} holds NaN or inf; nothing useful to export")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Export a detector checkpoint (network + box decoding; NMS in the caller).")
    p.add_argument("--checkpoint", required=True, help="detector checkpoint (.pt) written by training")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, type=Path, help="output file (.onnx / .pt2)")
    p.add_argument("--atol", type=float, default=1e-4, help="largest allowed |exported - eager| (default 1e-4)")
    a = p.parse_args(argv)
    from pipeline.detector.checkpoint import load_detector

    if a.out.is_dir():
        raise ExportError(f"--out: {a.out} is a folder; give a file name")
    model, extra = load_detector(a.checkpoint)
    check_finite(model, a.checkpoint)
    meta = export_model(model, a.format, a.out, extra.get("classes"))
    runner = onnx_runner if a.format == "onnx" else torch_export_runner
    diff = max_abs_diff(model, runner(a.out))
    if not diff <= a.atol:
        raise ExportError(f"{a.out}: exported outputs differ from eager PyTorch by {diff:.3g} (> --atol {a.atol})")
    print(json.dumps({"out": str(a.out), "format": a.format, "variant": meta["variant"],
                      "input_size": meta["input_size"], "max_abs_diff_vs_eager": diff}))  # fmt: skip
    return 0


def cli() -> NoReturn:
    """Console script ``sod-export``."""
    from pipeline.cli import run_cli

    run_cli(main)


if __name__ == "__main__":
    cli()

__all__ = ["Decoded", "ExportError", "export_model", "max_abs_diff", "metadata", "onnx_runner", "trace",
           "torch_export_runner"]
