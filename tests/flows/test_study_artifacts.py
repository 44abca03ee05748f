"""The study as a Prefect flow against the session's real Prefect server: its effects become artifacts.

Four finished runs are real git commits under ``refs/exps/<baseline>/`` holding their params and real
bootstrap documents (as ``dvc exp run`` leaves them), so ``--report-only`` reads them exactly as after a
real study.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.evaluation.helpers import grid_fixture
from tests.flows.conftest import prefect_env
from tests.flows.test_artifacts import _read_back, _table
from tests.study.test_effects import _run

RUN = """
import sys
from pipeline.flows.study import study_flow
state = study_flow(sys.argv[1:], return_state=True)
state.result()
print(state.state_details.flow_run_id)
"""


def _git(root, *args):
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def _finished_runs(root):
    """A git repo whose refs/exps hold 2 variants × 2 seeds of evaluation bootstrap documents."""
    records, detections = grid_fixture(11, n_images=40)  # as tests/study: HR − LR resolved
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "t@example.com")
    _git(root, "config", "user.name", "t")
    (root / "params.yaml").write_text("model:\n  variant: ssd\ntrain:\n  seed: 0\n")
    _git(root, "add", "params.yaml")
    _git(root, "commit", "-qm", "baseline")
    base = _git(root, "rev-parse", "HEAD")
    for variant, noise in (("ssd", 0.9), ("shallow", 0.5)):
        for seed in range(2):
            run = _run(f"study-{variant}-s{seed}", variant, seed, records, detections, noise)
            _git(root, "checkout", "-q", "--detach", base)
            (root / "params.yaml").write_text(f"model:\n  variant: {variant}\ntrain:\n  seed: {seed}\n")
            (root / "data/eval").mkdir(parents=True, exist_ok=True)
            (root / "data/eval/bootstrap.json").write_text(json.dumps(run.bootstrap))
            _git(root, "add", "params.yaml", "data/eval/bootstrap.json")
            _git(root, "commit", "-qm", run.name)
            _git(root, "update-ref", f"refs/exps/{base[:2]}/{base[2:]}/{run.name}", "HEAD")
    _git(root, "checkout", "-q", "--detach", base)


def test_study_flow_publishes_its_effects_table_and_report(tmp_path, prefect_server):
    repo = tmp_path / "repo"
    repo.mkdir()
    _finished_runs(repo)
    env = prefect_env(tmp_path / "prefect-home", prefect_server)
    proc = subprocess.run(
        [sys.executable, "-c", RUN, "--variants", "ssd", "shallow", "--seeds", "2", "--report-only",
         "--repo", str(repo)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    run_id = proc.stdout.strip().splitlines()[-1]

    _, arts, _ = _read_back(prefect_server, run_id)
    assert arts["study-effects"].type == "table" and arts["study-report"].type == "markdown"
    rows = _table(arts["study-effects"])
    effects = json.loads((repo / "data/study/effects.json").read_text())["effects"]
    assert rows == json.loads(json.dumps(effects))  # the same numbers as data/study/effects.json
    hr_lr = next(r for r in rows if r["effect"] == "HR − LR" and r["variant"] == "ssd" and r["metric"] == "map")
    assert hr_lr["seeds"] == 2 and hr_lr["lo"] <= hr_lr["value"] <= hr_lr["hi"] and hr_lr["lo"] > 0
    assert any(r["effect"].startswith("shallow − ssd") or r["variant"] == "shallow" for r in rows)
    assert arts["study-report"].data == (repo / "data/study/report.md").read_text()


def test_study_flow_help_starts_no_flow_run(tmp_path):
    env = prefect_env(tmp_path / "prefect-home", "http://127.0.0.1:9/api")  # nothing listens there
    proc = subprocess.run([sys.executable, "-m", "pipeline.flows.study", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--variants" in proc.stdout and "--report-only" in proc.stdout
