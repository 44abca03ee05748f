"""The study grid as DVC experiments: its cells, which already ran, and their files in git.

Each cell (variant, seed) is one DVC experiment ``<prefix>-<variant>-s<seed>`` run with
``-S model.variant=<variant> -S train.seed=<seed>`` plus the user's overrides
(:mod:`pipeline.study.queue` queues and runs them).  A variant may carry its own params after
``@`` (``shallow@model.small_iou_threshold=0.5``): an arm of the study that differs from the
plain variant in those params only, named ``<prefix>-shallow-model.small_iou_threshold=0.5-s0``.  Only the training seed varies: the data,
the SR model and the test set are the same in every run, so DVC re-runs ``train`` and
``evaluate`` only.  A finished run's files are read from its experiment commit (``git show
<ref>:<path>``), so the workspace is never touched.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import PipelineError
from pipeline.presets import parse_override

BOOTSTRAP_FILE = "data/eval/bootstrap.json"


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    variant: str
    seed: int
    prefix: str = "study"

    @property
    def name(self) -> str:
        variant, own = split_variant(self.variant)
        parts = [variant.replace("+", "_"), *(re.sub(r"[^A-Za-z0-9_.=-]", "_", o) for o in own)]
        return f"{self.prefix}-{'-'.join(parts)}-s{self.seed}"

    def overrides(self, extra: Sequence[str] = ()) -> list[str]:
        variant, own = split_variant(self.variant)
        return [f"model.variant={variant}", *own, f"train.seed={self.seed}", *extra]


def split_variant(spec: str) -> tuple[str, list[str]]:
    """``'shallow@model.small_iou_threshold=0.5'`` -> ``('shallow', ['model.small_iou_threshold=0.5'])``."""
    variant, *own = spec.split("@")
    if not variant:
        raise PipelineError(f"--variants {spec!r}: no model.variant before '@'")
    for text in own:
        key = parse_override(text)[0]
        if key in ("model.variant", "train.seed"):
            raise PipelineError(f"--variants {spec!r}: {key} is set by the study itself")
    return variant, own


def grid(variants: Sequence[str], seeds: int, prefix: str = "study") -> list[Cell]:
    """Every variant with training seeds 0..seeds-1."""
    if seeds < 1:
        raise PipelineError(f"--seeds must be at least 1 (got {seeds})")
    if len(set(variants)) != len(variants):
        raise PipelineError(f"--variants lists a variant twice: {' '.join(variants)}")
    cells = [Cell(v, s, prefix) for v in variants for s in range(seeds)]
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise PipelineError(f"--variants {' '.join(variants)}: two of them map to the same experiment names")
    return cells


def require_clean_workspace(root: Path) -> None:
    """Refuse to queue from a workspace whose git-tracked files differ from HEAD.

    ``dvc exp run --queue`` stashes the workspace into every queued run, so after a plain
    ``dvc exp run`` (which leaves its params and metrics in the workspace) the whole grid would
    silently run that experiment's params instead of the committed baseline's.
    """
    proc = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise PipelineError(f"{root}: not a git repository ({proc.stderr.strip()})")
    changed = [line[3:] for line in proc.stdout.splitlines() if line.strip()]
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise PipelineError(f"{root}: {shown} differ from HEAD; every queued run would carry these changes. "
                            "Commit them (the baseline), or put the workspace back with "
                            "`git checkout -- . && dvc checkout` (a `dvc exp run` leaves its experiment there)")


def resolve_commit(root: Path, rev: str = "HEAD") -> str:
    """The full sha of ``rev`` (HEAD: the baseline every queued run is based on)."""
    proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=root,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise PipelineError(f"{root}: {rev!r} is not a commit of this repository")
    return proc.stdout.strip()


def experiment_refs(root: Path, baseline: str | None = None) -> dict[str, str]:
    """Experiment name -> commit for the experiments based on ``baseline`` (a full sha; None: any).

    DVC keeps an experiment at ``refs/exps/<sha[:2]>/<sha[2:]>/<name>`` of its baseline ``sha``;
    the same name on another baseline is another experiment (older code or params).
    """
    out = subprocess.run(["git", "for-each-ref", "refs/exps", "--format=%(refname) %(objectname)"],
                         cwd=root, capture_output=True, text=True, check=True).stdout
    refs: dict[str, str] = {}
    for line in out.splitlines():
        ref, sha = line.split()
        parts = ref.split("/")
        if len(parts) != 5 or len(parts[2]) != 2:  # refs/exps/celery/..., exec/..., stash: not experiments
            continue
        if baseline is None or parts[2] + parts[3] == baseline:
            refs[parts[4]] = sha
    return refs


def apply_overrides(params: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``params`` with each ``key.path=value`` set, the value read as YAML (as ``dvc exp run -S`` does)."""
    out = copy.deepcopy(dict(params))
    for text in overrides:
        key, value = parse_override(text)
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def params_mismatch(expected: Mapping[str, Any], actual: Mapping[str, Any], prefix: str = "") -> str | None:
    """The first dotted key whose value differs, as ``key: actual (expected ...)``; None when equal."""
    for key in sorted(set(expected) | set(actual), key=str):
        e, a = expected.get(key, "<absent>"), actual.get(key, "<absent>")
        if isinstance(e, Mapping) and isinstance(a, Mapping):
            found = params_mismatch(e, a, f"{prefix}{key}.")
            if found:
                return found
        elif e != a:
            return f"{prefix}{key}: {a!r} (this study: {e!r})"
    return None


def finished_cells(root: Path, cells: Sequence[Cell], extra: Sequence[str] = (),
                   baseline_rev: str = "HEAD") -> dict[str, str]:
    """Cell name -> commit of the cells already run on ``baseline_rev`` with exactly this study's params.

    A same-named experiment of that baseline that ran other params (another ``-S``) is an
    error, never a silent reuse: its numbers would be reported as this study's.
    """
    baseline = resolve_commit(root, baseline_rev)
    refs = experiment_refs(root, baseline)
    base_params = read_yaml_at(root, baseline, "params.yaml", "the baseline")
    done: dict[str, str] = {}
    for cell in cells:
        if cell.name not in refs:
            continue
        ran = read_yaml_at(root, refs[cell.name], "params.yaml", f"experiment {cell.name}")
        diff = params_mismatch(apply_overrides(base_params, cell.overrides(extra)), ran)
        if diff:
            raise PipelineError(f"experiment {cell.name} already exists on this baseline with other params "
                                f"({diff}); remove it (`dvc exp remove {cell.name}`) or pick another --prefix")
        done[cell.name] = refs[cell.name]
    return done


def _show_at(root: Path, commit: str, path: str, what: str, hint: str = "") -> str:
    proc = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PipelineError(f"{what}: {path} is not in its commit {commit[:7]}{hint}")
    return proc.stdout


def read_yaml_at(root: Path, commit: str, path: str, what: str) -> dict[str, Any]:
    """A YAML mapping as committed in ``commit``; a clear error naming ``what`` and the file."""
    try:
        data = yaml.safe_load(_show_at(root, commit, path, what))
    except yaml.YAMLError as e:
        raise PipelineError(f"{what}: {path} in {commit[:7]} is not valid YAML ({e})") from e
    if not isinstance(data, dict):
        raise PipelineError(f"{what}: {path} in {commit[:7]} is not a mapping")
    return data


def read_json_at(root: Path, commit: str, path: str, what: str) -> dict[str, Any]:
    """A JSON file as committed in ``commit``; a clear error naming the run and file when missing."""
    text = _show_at(root, commit, path, what, " (did evaluate run?)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise PipelineError(f"{what}: {path} in {commit[:7]} is not valid JSON ({e})") from e
