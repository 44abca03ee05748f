"""The ``repro`` flow: the whole DVC pipeline, one Prefect task per DVC stage.

The stage order comes from DVC's own stage graph, and each task asks DVC's status
whether its stage is out of date; only then does it run ``dvc repro --single-item
<stage>``, streaming DVC's output into the task's log, so the Prefect UI shows
stage-level progress; a stage DVC finds up to date ends in the state ``Skipped``,
visibly apart from one that ran (``Completed``).
Overlapping runs are serialised by a file lock (``.dvc/tmp/repro-flow.lock``):
a second run waits up to ``wait_s`` seconds and is then skipped with a clear
message — it never starts half-way.  DVC's own repository lock, held by a
``dvc`` command started by hand, is a transient failure and is retried.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.states import Completed, State

from pipeline.dvc_cli import dvc_argv, dvc_env
from pipeline.errors import PipelineError
from pipeline.runlock import run_lock

DVC_LOCK_BUSY = "Unable to acquire lock"
SKIPPED = "Skipped"  # state name of a stage (or run) that had nothing to do


class StageFailed(PipelineError, RuntimeError):
    """A DVC stage exited non-zero."""


def _address(stage) -> str:
    """How ``dvc repro`` names ``stage`` from the repo root: ``train`` or ``sub/dvc.yaml:train``."""
    name = getattr(stage, "name", None)
    if not name:
        return stage.path_in_repo  # a .dvc file stage
    return name if stage.path_in_repo == "dvc.yaml" else f"{stage.path_in_repo}:{name}"


def stage_order(repo: Path) -> list[str]:
    """Stages in the order ``dvc repro`` runs them, from DVC's own stage graph (``${...}`` resolved)."""
    from dvc.repo import Repo
    from dvc.repo.reproduce import plan_repro

    with Repo(str(repo)) as r:
        return [_address(stage) for stage in plan_repro(r.index.graph)]


def stage_changed(repo: Path, stage: str) -> bool:
    """Whether DVC's state says ``stage`` is out of date (``dvc status``: deps, params, outs or cmd)."""
    from dvc.lock import LockError
    from dvc.repo import Repo

    target = str(repo / stage) if ":" in stage or stage.endswith(".dvc") else f"{repo / 'dvc.yaml'}:{stage}"
    try:
        with Repo(str(repo)) as r:
            return bool(r.status(targets=[target]))
    except LockError as exc:  # a `dvc` command started by hand holds the repo: transient, retried
        raise StageFailed(f"dvc status {stage}: {exc}") from exc


def _run_dvc(args: list[str], repo: Path) -> str:
    proc = subprocess.Popen(dvc_argv(*args), cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dvc_env())
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
def run_stage(stage: str, repo: str) -> str | State:
    """``dvc repro --single-item <stage>`` when DVC's status says it is out of date.

    A stage DVC finds up to date ends in the state ``Skipped`` (a Completed state under
    another name, so the UI shows it apart from a stage that ran), with result
    ``"skipped (unchanged)"``; a stage that ran ends ``Completed`` with result ``"ran"``.
    """
    if not stage_changed(Path(repo), stage):
        get_run_logger().info("%s: up to date (dvc status), skipped", stage)
        return Completed(name=SKIPPED, message="up to date (dvc status)", data="skipped (unchanged)")
    _run_dvc(["repro", "--single-item", stage], Path(repo))
    return "ran"


@flow(name="repro", log_prints=True)
def repro(repo: str = ".", stages: list[str] | None = None, wait_s: float = 0.0) -> dict[str, str]:
    """Reproduce the DVC pipeline stage by stage; returns {stage: "ran" | "skipped (unchanged)"}.

    A run skipped because another holds the lock ends in the state ``Skipped``.

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
            return Completed(name=SKIPPED, message="another pipeline run in progress",  # type: ignore[return-value]
                             data={"status": "skipped: another run in progress"})
        # return_state: the task's own state (Skipped or Completed) stays in the UI; .result() raises on failure
        return {stage: run_stage(stage, str(root), return_state=True).result() for stage in order}


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.flows.repro [--repo DIR] [--stage NAME ...] [--wait SECONDS]``."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.flows.repro",
        description="Reproduce the DVC pipeline as one Prefect flow run, one task per DVC stage "
        "(stages DVC finds up to date end 'Skipped').",
    )
    parser.add_argument("--repo", default=".", help="project directory holding dvc.yaml (default: .)")
    parser.add_argument("--stage", action="append", dest="stages", metavar="NAME",
                        help="run only this stage (repeatable; pipeline order is kept); default: all")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long for another run's lock, then skip this run (default: 0)")
    args = parser.parse_args(argv)
    results = repro(repo=args.repo, stages=args.stages, wait_s=args.wait)
    width = max(map(len, results), default=0)
    for stage, outcome in results.items():
        print(f"{stage:<{width}}  {outcome}")
    return 0


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)
