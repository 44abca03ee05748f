"""The study's queue runner against a real DVC project (a one-line stage) and DVC's real queue worker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.dvc_cli import dvc_env
from pipeline.errors import PipelineError
from pipeline.study.grid import Cell, experiment_refs, finished_cells, grid
from pipeline.study.queue import _wait, queue_and_run, queue_states

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]  # a wait that never ends fails here

# The stage fails for variant "broken", like a run that crashes.
STAGE = """\
stages:
  run:
    cmd: python -c "import sys, yaml; p = yaml.safe_load(open('params.yaml')); \
sys.exit(1) if p['model']['variant'] == 'broken' else open('out.txt', 'w').write(str(p))"
    params: [model, train]
    metrics:
      - out.txt:
          cache: false
"""


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=root, check=True,
                   capture_output=True)


def _dvc(root: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True,
                          env=dvc_env())  # the test's own setup runs its stage with this Python
    assert proc.returncode == 0, f"dvc {args}: {proc.stdout} {proc.stderr}"


@pytest.fixture
def project(tmp_path, monkeypatch):
    # PATH without this environment's bin, as for `.venv/bin/python -m pipeline.study` run without
    # activating it: the study must still start DVC's queue worker (`dvc`) and stages (`python`) from it
    here = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != here))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    _git(tmp_path, "init", "-q")
    _dvc(tmp_path, "init", "-q")
    (tmp_path / "params.yaml").write_text("model:\n  variant: ssd\ntrain:\n  seed: 0\n  steps: 10\n")
    (tmp_path / "dvc.yaml").write_text(STAGE)
    _dvc(tmp_path, "repro", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "baseline")
    return tmp_path


def test_runs_resume_and_a_same_named_run_with_other_params_is_refused(project):
    cells = grid(["ssd"], 2)
    said: list[str] = []
    queue_and_run(project, cells, ["train.steps=5"], poll_s=0.5, say=said.append)
    refs = experiment_refs(project)
    assert set(refs) == {"study-ssd-s0", "study-ssd-s1"}
    assert any(line.startswith("queue: 2/2 finished") for line in said), said
    # a progress line per change of state, not per tick of the running run's seconds
    states = [re.sub(r" \(\d+ (s|min)\)", "", line.split(" · about")[0])
              for line in said if line.startswith("queue: ") and " finished · " in line]
    assert len(states) >= 2 and all(a != b for a, b in zip(states, states[1:], strict=False)), said

    said.clear()  # the same study again: nothing is queued, both are kept
    queue_and_run(project, cells, ["train.steps=5"], poll_s=0.5, say=said.append)
    assert said == ["study-ssd-s0: finished earlier on this baseline, kept",
                    "study-ssd-s1: finished earlier on this baseline, kept"]

    with pytest.raises(PipelineError, match=r"study-ssd-s0 already exists .*train\.steps: 5 \(this study: 7\)"):
        queue_and_run(project, cells, ["train.steps=7"], poll_s=0.5, say=said.append)

    old_head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    (project / "notes.md").write_text("a later commit is another baseline\n")
    _git(project, "add", "notes.md")
    _git(project, "commit", "-qm", "notes")
    assert finished_cells(project, cells, ["train.steps=5"]) == {}
    assert set(finished_cells(project, cells, ["train.steps=5"], old_head)) == {"study-ssd-s0", "study-ssd-s1"}


def test_queued_runs_with_no_worker_get_one_and_a_failed_run_is_named(project):
    cells = [Cell("ssd", 0), Cell("broken", 0)]
    for cell in cells:  # queued, no worker: what a queue whose worker died looks like
        _dvc(project, "exp", "run", "--queue", "-n", cell.name, *[a for o in cell.overrides() for a in ("-S", o)])
    assert queue_states(project) == {c.name: "Queued" for c in cells}

    said: list[str] = []
    with pytest.raises(PipelineError, match=r"1 of 2 runs did not finish: study-broken-s0 .*dvc queue logs"):
        _wait(project, [c.name for c in cells], jobs=1, poll_s=0.5, grace_s=0.0, say=said.append)
    assert any("started the queue worker again" in line for line in said), said
    assert set(experiment_refs(project)) == {"study-ssd-s0"}
