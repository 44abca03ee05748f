"""Run the study's cells through DVC's experiment queue and wait for them, resumably.

Cells that already ran on HEAD with the same params are kept; cells already queued or running
are not queued twice; the rest are queued with ``dvc exp run --queue``.  The queue worker is
started with ``dvc queue start`` and the queue is polled (not followed with ``dvc exp run
--run-all``, which waits forever for a task whose worker has died): while runs are queued and
none runs, the worker is started again.  Interrupting only stops the waiting; the runs go on,
and the same command later picks up where they are.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.dvc_cli import dvc_argv, dvc_env, require_dvc_executable
from pipeline.errors import PipelineError
from pipeline.study.grid import Cell, experiment_refs, finished_cells, resolve_commit

#: Seconds runs may wait with none running before the worker is taken for dead and started again.
WORKER_GRACE_S = 60.0
#: A progress line at least this often while nothing changes (the running run's minutes).
HEARTBEAT_S = 300.0
#: Queue states, most recent attempt first when one name has several entries.
_RANK = {"Running": 3, "Queued": 2, "Success": 1, "Failed": 0}


def _dvc(root: Path, *args: str, capture: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(dvc_argv(*args), cwd=root, text=True, capture_output=capture, env=dvc_env())
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] if capture else []
        raise PipelineError(f"dvc {' '.join(args[:3])} failed (exit {proc.returncode}){': ' + tail[0] if tail else ''}")
    return proc


def queue_states(root: Path) -> dict[str, str]:
    """Experiment name -> Running | Queued | Success | Failed, from DVC's queue."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        rows = repo.experiments.celery_queue.status()
    states: dict[str, str] = {}
    for row in rows:
        name, state = row.get("name"), row.get("status")
        if name and state in _RANK and _RANK[state] >= _RANK.get(states.get(name, "Failed"), 0):
            states[name] = state
    return states


def start_workers(root: Path, jobs: int) -> int:
    """``dvc queue start -j jobs``: spawns the workers that are not alive; returns how many it started.

    Output goes through a file, not a pipe: the detached worker inherits the command's stdout,
    and reading a pipe to its end would wait for the worker to exit (the whole queue).
    """
    env = dvc_env()
    require_dvc_executable(env)
    with tempfile.TemporaryFile(mode="w+") as out:
        proc = subprocess.run(dvc_argv("queue", "start", "-j", str(jobs)), cwd=root, env=env,
                              stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise PipelineError(f"dvc queue start failed (exit {proc.returncode}): {text.strip()[-300:]}")
    match = re.search(r"Started '(\d+)'", text)
    return int(match.group(1)) if match else 0


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def queue_and_run(root: Path, cells: Sequence[Cell], extra: Sequence[str] = (), jobs: int = 1,
                  poll_s: float = 10.0, worker_grace_s: float = WORKER_GRACE_S,
                  say: Callable[[str], None] | None = None) -> None:
    """Run every cell not yet finished on HEAD; return when none is queued or running.

    Raises when a run failed (naming it and ``dvc queue logs``); the finished ones stay, so
    running the same study again retries only what is missing.
    """
    say = say or (lambda line: print(line, flush=True))
    done = finished_cells(root, cells, extra)
    states = queue_states(root)
    for cell in cells:
        if cell.name in done:
            say(f"{cell.name}: finished earlier on this baseline, kept")
        elif states.get(cell.name) in ("Queued", "Running"):
            say(f"{cell.name}: already {states[cell.name].lower()}")
        else:
            args = ["exp", "run", "--queue", "-n", cell.name]
            for o in cell.overrides(extra):
                args += ["-S", o]
            _dvc(root, *args)
            say(f"{cell.name}: queued")
    pending = [c.name for c in cells if c.name not in done]
    if not pending:
        return
    start_workers(root, jobs)
    say(f"queue: {len(pending)} runs; follow one with `dvc queue logs -f NAME`")
    try:
        _wait(root, pending, jobs, poll_s, worker_grace_s, say)
    except KeyboardInterrupt:
        say("stopped waiting: the queued runs go on in the background (`dvc queue status`); "
            "run the same command again to wait for them and report")
        raise


def _wait(root: Path, pending: Sequence[str], jobs: int, poll_s: float, grace_s: float,
          say: Callable[[str], None], heartbeat_s: float = HEARTBEAT_S) -> None:
    baseline = resolve_commit(root)
    began = time.monotonic()
    started_at: dict[str, float] = {}
    durations: list[float] = []
    idle_since: float | None = None
    last_state: tuple = ()
    last_said = began
    while True:
        states = queue_states(root)
        refs = experiment_refs(root, baseline)
        now = time.monotonic()
        finished = [n for n in pending if n in refs and states.get(n) not in ("Queued", "Running")]
        running = [n for n in pending if states.get(n) == "Running"]
        queued = [n for n in pending if states.get(n) == "Queued"]
        failed = [n for n in pending if n not in finished and n not in running and n not in queued]
        for n in running:
            started_at.setdefault(n, now)
        for n in finished:
            if n in started_at:
                durations.append(now - started_at.pop(n))
        line = (f"queue: {len(finished)}/{len(pending)} finished · running "
                f"{', '.join(f'{n} ({_minutes(now - started_at[n])})' for n in running) or '-'} · "
                f"{len(queued)} queued · {len(failed)} failed")
        if durations and (running or queued):
            per_run = sum(durations) / len(durations)
            line += f" · about {_minutes(per_run * (len(queued) + len(running)) / max(jobs, 1))} left"
        state = (len(finished), tuple(running), len(queued), len(failed))
        if state != last_state or now - last_said >= heartbeat_s:  # a change, or a sign of life
            say(line)
            last_state, last_said = state, now
        if not running and not queued:
            break
        idle_since = (idle_since or now) if queued and not running else None
        if idle_since is not None and now - idle_since >= grace_s:  # runs wait, none runs: worker gone
            if start_workers(root, jobs):
                say(f"queue: {len(queued)} runs queued and none running: started the queue worker again")
            idle_since = None
        time.sleep(poll_s)
    if failed:
        raise PipelineError(f"{len(failed)} of {len(pending)} runs did not finish: {', '.join(failed)} "
                            f"(see `dvc queue logs {failed[0]}`); finished runs are kept, so running the "
                            f"same command again retries only these ({_minutes(time.monotonic() - began)} spent)")
