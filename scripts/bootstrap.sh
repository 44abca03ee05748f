#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv, offline apart from
# the package registries. Idempotent: a second run only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Build tooling first (basicsr is built from its sdist without build isolation).
$PIP install -q "setuptools>=68" wheel
# torch/torchvision pinned; pip takes them from local disk where a constraint file says so.
$PIP install -q torch==2.14.1 torchvision==0.29.1
$PIP install -q -e ".[dev]"
# basicsr 1.4.2 is the latest release. Its requirement list drags in tb-nightly and an
# unpinned opencv-python (now 5.x), so it is installed without dependencies; the runtime
# needs it has are listed in pyproject.toml. Its import of the removed
# torchvision.transforms.functional_tensor is bridged in pipeline/sr/basicsr_compat.py.
$PIP install -q --no-deps --no-build-isolation basicsr==1.4.2
.venv/bin/python -c "import pipeline.sr.basicsr_compat as c; c.import_basicsr()" \
    || { echo "bootstrap: basicsr import check failed" >&2; exit 1; }
# Offline `dvc plots show`: vl-convert-python's Vega/Vega-Lite/vega-embed bundle inlined in a
# generated, git-ignored .dvc/plots_template.html (rewritten only when the versions change).
.venv/bin/python scripts/plots_template.py
# Headless Chromium for the offline plots test (tests/e2e/test_plots_offline.py skips without it):
# Debian's chromium-headless-shell where apt-get runs as root; anything else only warns.
if ! command -v chromium-headless-shell >/dev/null 2>&1 && ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
        && { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
             chromium-headless-shell; } >/dev/null 2>&1; then
        echo "bootstrap: installed chromium-headless-shell (offline plots test)"
    else
        echo "bootstrap: no Chromium (needs root apt-get); tests/e2e/test_plots_offline.py will be skipped" >&2
    fi
fi
