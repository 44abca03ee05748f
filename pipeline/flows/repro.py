"""The ``repro`` flow: the whole DVC pipeline, one Prefect task per DVC stage.

Each task runs ``dvc repro --single-item <stage>`` in dependency order, streaming
DVC's output into the task's log, so the Prefect UI shows stage-level progress.
Overlapping runs are serialised by a file lock (``.dvc/tmp/repro-flow.lock``):
a second run waits up to ``wait_s`` seconds and is then skipped with a clear
message — it never starts half-way.  DVC's own repository lock, held by a
``dvc`` command started by hand, is a transient failure and is retried.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task

from pipeline.runlock import run_lock

DVC_LOCK_BUSY = "Unable to acquire lock"


class StageFailed(RuntimeError):
    """A DVC stage exited non-zero."""


def stage_order(repo: Path) -> list[str]:
    """Stages of ``dvc.yaml`` in dependency order (an out that is another stage's dep first)."""
    stages = (yaml.safe_load((repo / "dvc.yaml").read_text()) or {}).get("stages", {})

    def paths(entries) -> list[str]:
        out = []
        for e in entries or []:
            out.append(next(iter(e)) if isinstance(e, dict) else str(e))
        return out

    outs = {name: paths(s.get("outs")) + paths(s.get("metrics")) + paths(s.get("plots")) for name, s in stages.items()}
    deps = {name: paths(s.get("deps")) for name, s in stages.items()}

    def produces(a: str, dep: str) -> bool:
        return any(dep == o or dep.startswith(o.rstrip("/") + "/") or o.startswith(dep.rstrip("/") + "/") for o in outs[a])

    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ValueError(f"dvc.yaml: dependency cycle through stage {name!r}")
        visiting.add(name)
        for other in stages:
            if other != name and any(produces(other, d) for d in deps[name]):
                visit(other)
        visiting.discard(name)
        order.append(name)

    for name in stages:
        visit(name)
    return order


def _run_dvc(args: list[str], repo: Path) -> str:
    proc = subprocess.Popen([sys.executable, "-m", "dvc", *args], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    logger = get_run_logger()
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.strip():
            logger.info(line.rstrip())
    proc.wait()
    text = "".join(lines)
    if proc.returncode != 0:
        raise StageFailed(f"dvc {' '.join(args)} exited {proc.returncode}:\n{text[-2000:]}")
    return text


def _dvc_lock_busy(task, task_run, state) -> bool:
    """Retry only when DVC's repository lock was busy (transient), never on a stage error."""
    try:
        state.result()
    except StageFailed as exc:
        return DVC_LOCK_BUSY in str(exc)
    except Exception:
        return False
    return False


@task(name="dvc-stage", retries=5, retry_delay_seconds=10, retry_condition_fn=_dvc_lock_busy,
      task_run_name="{stage}", cache_policy=None)
def run_stage(stage: str, repo: str) -> str:
    """``dvc repro --single-item <stage>``: runs it only if its deps/params changed."""
    out = _run_dvc(["repro", "--single-item", stage], Path(repo))
    return "skipped (unchanged)" if "didn't change, skipping" in out or "is cached" in out else "ran"


@flow(name="repro", log_prints=True)
def repro(repo: str = ".", stages: list[str] | None = None, wait_s: float = 0.0) -> dict[str, str]:
    """Reproduce the DVC pipeline stage by stage; returns {stage: "ran" | "skipped (unchanged)"}.

    Args:
        repo: the project directory (holding dvc.yaml).
        stages: a subset to run (in pipeline order); default all.
        wait_s: how long to wait for another run's lock before skipping this run.
    """
    logger = get_run_logger()
    root = Path(repo).resolve()
    order = stage_order(root)
    if stages:
        unknown = sorted(set(stages) - set(order))
        if unknown:
            raise ValueError(f"unknown DVC stage(s) {unknown}; dvc.yaml has {order}")
        order = [s for s in order if s in stages]
    with run_lock(root / ".dvc" / "tmp" / "repro-flow.lock", wait_s=wait_s) as held:
        if not held:
            logger.warning("another pipeline run holds %s; this run is skipped (nothing was changed)",
                           root / ".dvc/tmp/repro-flow.lock")
            return {"status": "skipped: another run in progress"}
        results = {}
        for stage in order:
            results[stage] = run_stage(stage, str(root))
        return results


if __name__ == "__main__":
    print(repro())
