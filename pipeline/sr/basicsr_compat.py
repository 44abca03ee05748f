"""Import basicsr 1.4.2 on torchvision >= 0.17.

basicsr 1.4.2 (its latest release) imports ``torchvision.transforms.functional_tensor``,
a module torchvision renamed to ``_functional_tensor`` in 0.17 and then removed.
We alias the private module under the old name before importing basicsr; nothing
else in basicsr is patched.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


def import_basicsr() -> ModuleType:
    """Return the ``basicsr`` module, bridging the removed torchvision module first."""
    old = "torchvision.transforms.functional_tensor"
    if old not in sys.modules:
        try:
            importlib.import_module(old)
        except ModuleNotFoundError:
            sys.modules[old] = importlib.import_module("torchvision.transforms._functional_tensor")
    try:
        return importlib.import_module("basicsr")
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "basicsr is not installed: run scripts/bootstrap.sh (it installs basicsr==1.4.2 --no-deps)"
        ) from exc
