"""The study grid as DVC experiments: queue, run, and read each run's results back from git.

Each cell (variant, seed) is one ``dvc exp run --queue -n <prefix>-<variant>-s<seed>`` with
``-S model.variant=<variant> -S train.seed=<seed>`` plus the user's overrides; the queue then
runs with ``dvc exp run --run-all``.  Only the training seed varies: the data, the SR model and
the test set are the same in every run, so DVC re-runs ``train`` and ``evaluate`` only.  A
finished run's files are read from its experiment commit (``git show <ref>:<path>``), so the
workspace is never touched.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

BOOTSTRAP_FILE = "data/eval/bootstrap.json"


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    variant: str
    seed: int
    prefix: str = "study"

    @property
    def name(self) -> str:
        return f"{self.prefix}-{self.variant.replace('+', '_')}-s{self.seed}"

    def overrides(self, extra: Sequence[str] = ()) -> list[str]:
        return [f"model.variant={self.variant}", f"train.seed={self.seed}", *extra]


def grid(variants: Sequence[str], seeds: int, prefix: str = "study") -> list[Cell]:
    """Every variant with training seeds 0..seeds-1."""
    if seeds < 1:
        raise PipelineError(f"--seeds must be at least 1 (got {seeds})")
    if len(set(variants)) != len(variants):
        raise PipelineError(f"--variants lists a variant twice: {' '.join(variants)}")
    return [Cell(v, s, prefix) for v in variants for s in range(seeds)]


def _dvc(root: Path, *args: str, capture: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, text=True,
                          capture_output=capture)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] if capture else []
        raise PipelineError(f"dvc {' '.join(args[:3])} failed (exit {proc.returncode}){': ' + tail[0] if tail else ''}")
    return proc


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


def queue_and_run(root: Path, cells: Sequence[Cell], extra: Sequence[str] = (), jobs: int = 1) -> None:
    """Queue every cell as a DVC experiment and run the queue in the foreground (output streamed)."""
    for cell in cells:
        args = ["exp", "run", "--queue", "-n", cell.name]
        for o in cell.overrides(extra):
            args += ["-S", o]
        _dvc(root, *args)
        print(f"queued {cell.name}", flush=True)
    _dvc(root, "exp", "run", "--run-all", "--jobs", str(jobs), capture=False)


def experiment_refs(root: Path) -> dict[str, str]:
    """Experiment name -> commit, for every experiment ref in the repo."""
    out = subprocess.run(["git", "for-each-ref", "refs/exps", "--format=%(refname) %(objectname)"],
                         cwd=root, capture_output=True, text=True, check=True).stdout
    refs: dict[str, str] = {}
    for line in out.splitlines():
        ref, sha = line.split()
        refs[ref.rsplit("/", 1)[-1]] = sha
    return refs


def read_json_at(root: Path, commit: str, path: str, what: str) -> dict[str, Any]:
    """A JSON file as committed in ``commit``; a clear error naming the run and file when missing."""
    proc = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PipelineError(f"{what}: {path} is not in its experiment commit {commit[:7]} (did evaluate run?)")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise PipelineError(f"{what}: {path} in {commit[:7]} is not valid JSON ({e})") from e
