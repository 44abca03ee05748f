"""Run state shared by the training loops (detector and SR).

One home for what makes a training run resumable and safe to resume:

* :func:`fingerprint` — everything that determines the result: every param of the run
  (but the runtime-only knobs in :data:`RUNTIME_KNOBS`), the content hash of the
  training data actually used (annotations and image bytes, :func:`data_hash`), the
  content of any weights file the run starts from, and the code version (hash of the
  ``pipeline`` package sources).
* :func:`resumable` — the decision "resume or start fresh, and why": a checkpoint is
  resumed only when its recorded fingerprint equals the current one; otherwise one log
  line names the first differences (``train.lr differs (0.01 -> 0.02)``, ``training data
  changed``, ``code changed``).
* RNG save/restore (python, numpy, torch, CUDA), a safe ``torch.load(weights_only=True)``
  whose errors name the file, an atomic ``torch.save``, and a per-output-folder lock so
  two trainings never write into one folder at once.

Core library: imports neither Prefect nor DVC.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipeline.atomic import atomic_path
from pipeline.data.images import ImageError
from pipeline.errors import PipelineError
from pipeline.hashing import HashState, content_hash, tree_source_hash
from pipeline.runlock import run_lock

if TYPE_CHECKING:
    from pipeline.data.schema import ImageRecord

log = logging.getLogger(__name__)

#: The ``pipeline`` package whose sources are the code version of a run.
CODE_DIR = Path(__file__).resolve().parent
#: Params that change how a run executes, not what it computes: a checkpoint written
#: under other values of these still resumes.  The one list, for both loops.
RUNTIME_KNOBS = frozenset({
    "train.num_workers", "train.checkpoint_every", "train.log_every",
    "sr.train.checkpoint_every", "sr.train.log_every", "sr.train.max_cached_images",
})
#: Lock file held by a training run inside its output folder.
LOCK_FILE = ".train.lock"
#: Memo of data-file digests inside a run's checkpoint folder (stat-keyed, as DVC's).
HASH_STATE_FILE = "data-hashes.json"


class CheckpointError(PipelineError, ValueError):
    """A checkpoint file is missing, unreadable or malformed; names the file."""


class RunBusyError(PipelineError, RuntimeError):
    """Another training run holds the output folder."""


# ---------------------------------------------------------------- fingerprint


def code_version() -> str:
    """Hash of every ``*.py`` under :data:`CODE_DIR` (memoised per folder: the code a
    process has loaded does not change while it runs)."""
    return _tree_hash(CODE_DIR)


@functools.cache
def _tree_hash(root: Path) -> str:
    return tree_source_hash(root)


def flat_params(sections: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.01}}`` -> ``{"train.lr": 0.01}``; tuples become lists (as after a
    torch round trip); the keys in :data:`RUNTIME_KNOBS` are left out."""
    out: dict[str, Any] = {}
    for key, value in sections.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flat_params(value, f"{name}.")
        elif name not in RUNTIME_KNOBS:
            out[name] = _plain(value)
    return out


def _plain(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def data_hash(records: Sequence[ImageRecord], files: Iterable[Path], state: HashState | None = None) -> str:
    """md5 over the annotations of ``records`` (ids, file names, sizes, boxes, labels,
    flags) and the bytes of ``files`` (the images read), in order."""
    state = state or HashState()
    h = hashlib.md5()
    for r in records:
        h.update(json.dumps([r.image_id, r.file_name, r.split, int(r.width), int(r.height)]).encode())
        for a in (r.boxes, r.labels, r.difficult, r.iscrowd):
            h.update(str(a.dtype).encode() + np.ascontiguousarray(a).tobytes())
    for p in map(Path, files):
        if not p.is_file():
            raise ImageError(f"{p}: image file not found")
        h.update(state.md5(p).encode())
    state.save()
    return h.hexdigest()


def fingerprint(
    params: Mapping[str, Any],
    data: str,
    weight_files: Mapping[str, str | os.PathLike[str] | None] | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """What must match for a checkpoint to resume this run.

    Args:
        params: the run's params sections (nested dicts, e.g. ``{"train": asdict(cfg)}``)
            and any run facts (``{"run": {"device": "cpu"}}``).
        data: :func:`data_hash` of the training data used.
        weight_files: param key -> file the run starts from (pretrained weights); its
            content is part of the fingerprint (a missing or unset one counts as none).
        code: the code version (default :func:`code_version`).
    """
    hashes = {"training data": data, "code": code or code_version()}
    for key, path in sorted((weight_files or {}).items()):
        if path is not None and Path(path).is_file():
            hashes[f"{key} file"] = content_hash(path)
    return {"params": flat_params(params), "hashes": hashes}


def mismatch(recorded: Any, current: Mapping[str, Any]) -> str | None:
    """Why a checkpoint recorded under ``recorded`` may not resume ``current``; None if it may."""
    if not isinstance(recorded, Mapping) or set(recorded) != {"params", "hashes"}:
        return "it records no fingerprint of its run"
    reasons = []
    old, new = recorded["params"], current["params"]
    for key in sorted(set(old) | set(new)):
        if key not in old:
            reasons.append(f"{key} is new")
        elif key not in new:
            reasons.append(f"{key} is gone")
        elif _plain(old[key]) != new[key]:
            reasons.append(_difference(key, _plain(old[key]), new[key]))
    for name in sorted(set(recorded["hashes"]) | set(current["hashes"])):
        if recorded["hashes"].get(name) != current["hashes"].get(name):
            reasons.append(f"{name} changed")
    if not reasons:
        return None
    more = f" and {len(reasons) - 3} more" if len(reasons) > 3 else ""
    return "; ".join(reasons[:3]) + more


def _difference(key: str, old: Any, new: Any) -> str:
    """``train.lr differs (0.01 -> 0.02)``; for lists the first differing item, e.g. a class
    name: ``data.classes[3] differs ('cat' -> 'dog')`` (``None`` past the shorter list's end)."""
    if isinstance(old, list) and isinstance(new, list):
        item = lambda seq, i: seq[i] if i < len(seq) else None  # noqa: E731
        first = next(i for i in range(max(len(old), len(new))) if item(old, i) != item(new, i))
        return f"{key}[{first}] differs ({item(old, first)!r} -> {item(new, first)!r})"
    return f"{key} differs ({old!r} -> {new!r})"


def resumable(path: Path, current: Mapping[str, Any], what: str = "training checkpoint") -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it may resume the run fingerprinted ``current``.

    None when there is none, or when its fingerprint differs: then one warning says
    which part differs and that training starts from scratch.

    Raises:
        CheckpointError: the file exists but is unreadable or not a dict.
    """
    if not path.is_file():
        return None
    state = load_state(path, what, hint="; delete it to retrain")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a {what} (a {type(state).__name__}); delete it to retrain")
    reason = mismatch(state.get("fingerprint"), current)
    if reason is not None:
        log.warning("checkpoint %s not resumed: %s; training from scratch", path, reason)
        return None
    return state


# ---------------------------------------------------------------- files


def load_state(path: str | os.PathLike[str], what: str = "checkpoint", map_location: Any = "cpu", hint: str = "") -> Any:
    """``torch.load(weights_only=True)``; any failure is a CheckpointError naming ``path``
    (and ending in ``hint``, e.g. what to do about it)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and torch errors of many types
        raise CheckpointError(f"{path}: corrupt or unreadable {what} ({_reason(exc)}){hint}") from exc


def _reason(exc: Exception) -> str:
    """A short cause: torch's weights-only refusal is a paragraph that suggests unsafe loading."""
    text = str(exc)
    if "Weights only load failed" in text:
        return "not a plain tensor file: a safe weights-only load refuses it"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first[:200]}"


def save_state(path: str | os.PathLike[str], obj: Any) -> None:
    """``torch.save`` to a temp file beside ``path``, renamed into place."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


@contextlib.contextmanager
def exclusive_output(out_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Hold ``<out_dir>/.train.lock`` for the block; RunBusyError if another run holds it."""
    lock = Path(out_dir) / LOCK_FILE
    with run_lock(lock) as acquired:
        if not acquired:
            holder = lock.read_text().strip() if lock.is_file() else "?"
            raise RunBusyError(f"{out_dir}: another training is writing to this folder (pid {holder or '?'}, "
                               f"lock {lock}); wait for it to finish or choose another output folder")
        yield


# ---------------------------------------------------------------- RNG


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """All RNG states, as types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    random.setstate(_to_tuple(state["python"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys).astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(x: Any) -> Any:
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
