"""ONNX and torch.export outputs equal eager PyTorch (boxes and scores to 1e-4 on the CPU).

Each dynamo ONNX export costs 10-25 CPU seconds, so ONNX parity runs on two composite
variants that between them hold every layer type of the twelve valid variant strings, with
and without BatchNorm (``test_parity_variants_cover_every_variant`` checks that claim):
``shallow+fem+atss`` (plain SSD sources plus conv3_3, L2Norm, FEM with Mish, the ATSS flag)
and ``fem+mdssd`` with ScratchDet BatchNorm (MDSSD's deconvolutions and crops, BN in every
block).  The default ``ssd`` goes through the CLI's torch.export path.
"""

from __future__ import annotations

import dataclasses
import itertools
import json

import onnx
import pytest
import torch

from pipeline.config import ConfigError
from pipeline.detector.checkpoint import save_detector
from pipeline.detector.variants import PARTS, parse_variant
from pipeline.export import META_FILE, export_model, main, max_abs_diff, onnx_runner, torch_export_runner
from tests.detector.train_helpers import one_thread
from tests.export.helpers import CLASSES, tiny_model

ATOL = 1e-4
PARITY = [("shallow+fem+atss", False), ("fem+mdssd", True)]


@pytest.mark.parametrize(("variant", "batch_norm"), PARITY)
def test_onnx_matches_eager(tmp_path, variant, batch_norm):
    model = tiny_model(variant, batch_norm)
    out = tmp_path / "model.onnx"
    with one_thread():
        meta = export_model(model, "onnx", out, CLASSES)
        run = onnx_runner(out)
        for batch, seed in ((1, 1), (4, 2)):  # traced at batch 2: the batch is dynamic
            boxes, scores = run(torch.rand(batch, 3, 300, 300))
            assert boxes.shape == (batch, model.anchors.shape[0], 4)
            assert scores.shape == (batch, model.anchors.shape[0], len(CLASSES))
            assert max_abs_diff(model, run, batch, seed) <= ATOL
    proto = onnx.load(str(out))
    props = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert props["classes"] == CLASSES and props["variant"] == meta["variant"] == parse_variant(variant).name
    ops = {n.op_type for n in proto.graph.node}
    assert ("ConvTranspose" in ops) == ("mdssd" in variant)
    assert not (tmp_path / "model.onnx.data").exists()  # one self-contained file


def test_torch_export_cli_round_trip(tmp_path, capsys):
    """The CLI on a real checkpoint: the saved program, reloaded, equals the eager model."""
    model = tiny_model("ssd")
    ckpt, out = tmp_path / "model.pt", tmp_path / "model.pt2"
    save_detector(ckpt, model, {"classes": CLASSES})
    with one_thread():
        assert main(["--checkpoint", str(ckpt), "--format", "torch-export", "--out", str(out)]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["variant"] == "ssd" and summary["max_abs_diff_vs_eager"] <= ATOL
        run = torch_export_runner(out)
        assert max_abs_diff(model, run, batch=1, seed=5) <= ATOL
    extra = {META_FILE: ""}
    torch.export.load(str(out), extra_files=extra)
    assert json.loads(extra[META_FILE])["classes"] == CLASSES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "model.pt2"]  # no temp files left


def _valid_variants() -> list[str]:
    names = []
    for k in range(len(PARTS) + 1):
        for parts in itertools.combinations(PARTS, k):
            try:
                names.append(parse_variant("+".join(parts) or "ssd").name)
            except ConfigError:
                continue
    return names


def _layers(model) -> set[str]:
    return {type(m).__name__ for m in model.modules()}


def test_parity_variants_cover_every_variant():
    """Every valid variant, with and without BatchNorm, is made only of layer types the ONNX
    parity tests export, and ATSS (a training-time matcher) leaves the weights' layout unchanged."""
    variants = _valid_variants()
    assert len(variants) == 12
    with one_thread():
        covered = set().union(*(_layers(tiny_model(v, bn)) for v, bn in PARITY))
        shapes = {}
        for v, bn in itertools.product(variants, (False, True)):
            model = tiny_model(v, bn)
            assert _layers(model) <= covered, (v, bn, _layers(model) - covered)
            shapes[v, bn] = {k: t.shape for k, t in model.state_dict().items()}
    for (v, bn), layout in shapes.items():
        assert layout == shapes[dataclasses.replace(parse_variant(v), atss=False).name, bn]
