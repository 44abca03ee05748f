"""Two pipeline runs at once never corrupt each other's outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipeline.data.schema import read_records
from pipeline.runlock import run_lock

from .conftest import copy_project

pytestmark = pytest.mark.slow

RUN = ("import json; from pipeline.flows.repro import repro; "
       "print(json.dumps(repro(repo='.', stages=['source', 'fetch', 'ingest', 'degrade'], wait_s={wait})))")


def _start(proj, home, wait):
    env = dict(proj.env, PREFECT_HOME=str(home))
    return subprocess.Popen([sys.executable, "-c", RUN.format(wait=wait)], cwd=proj.root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_runs_at_once_serialise_and_leave_consistent_outputs(tmp_path, prefect_server):
    proj = copy_project(tmp_path / "proj", api_url=prefect_server)
    first = _start(proj, tmp_path / "h1", wait=600)
    second = _start(proj, tmp_path / "h2", wait=600)
    results = []
    for p in (first, second):
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-4000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    # One run did the work; the other waited for the lock and found everything up to date.
    # (The source stage, DVC always_changed, recomputes the data fingerprint in both.)
    ran = [r for r in results if "ran" in (r["fetch"], r["ingest"], r["degrade"])]
    assert len(ran) == 1, results
    other = results[1 - results.index(ran[0])]
    assert {v for k, v in other.items() if k != "source"} == {"skipped (unchanged)"}, results
    status = proj.dvc("status", "degrade").stdout
    assert "changed" not in status, status
    hr, _ = read_records(proj.root / "data/sets/hr")
    lr, _ = read_records(proj.root / "data/sets/lr")
    assert [r.image_id for r in lr] == [r.image_id for r in hr]
    assert all((proj.root / "data/sets/lr/images" / r.file_name).is_file() for r in lr)


def test_a_run_that_cannot_get_the_lock_is_skipped_cleanly(tmp_path, prefect_server):
    proj = copy_project(tmp_path / "proj", api_url=prefect_server)
    with run_lock(proj.root / ".dvc/tmp/repro-flow.lock") as held:
        assert held
        p = _start(proj, tmp_path / "h", wait=0)
        out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1]) == {"status": "skipped: another run in progress"}
    assert not (proj.root / "data/raw").exists()
