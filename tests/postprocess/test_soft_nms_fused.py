"""The fused Triton Soft-NMS kernel, run by Triton's interpreter on the CPU, against the reference loop.

On a GPU the same kernel is compiled; CI has none, so the interpreter checks its
logic (picks, decay, tie-breaking, step cap).  TRITON_INTERPRET must be set before
triton is imported, hence a subprocess running tests/postprocess/fused_cases.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.postprocess import soft_nms_triton

CASES = Path(__file__).with_name("fused_cases.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(soft_nms_triton.triton is None, reason="triton is not installed")
def test_fused_kernel_under_interpreter(tmp_path):
    env = {**os.environ, "TRITON_INTERPRET": "1", "TRITON_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CASES)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


@pytest.mark.skipif(soft_nms_triton.triton is None, reason="triton is not installed")
@pytest.mark.parametrize("arch", [80, 90])  # A100, H100
@pytest.mark.parametrize(("linear", "block"), [(True, 16), (False, 512)])
def test_fused_kernel_compiles_for_the_target_gpus(arch, linear, block, tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))  # a fresh compile, nothing written to ~/.triton
    kernel = soft_nms_triton.compile_for(arch, linear, block)
    assert len(kernel.asm["cubin"]) > 0
    assert f".target sm_{arch}" in kernel.asm["ptx"]
