"""pipeline.presets: preset + ``-S`` overrides become ``dvc exp run`` commands; a real DVC repo runs and queues them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.presets import PRESETS, commands, dvc_exp_command

REPO = Path(__file__).resolve().parents[1]


def test_every_preset_key_exists_in_the_projects_params():
    cmds = commands(list(PRESETS), [], queue=False, params_file=REPO / "params.yaml")
    assert [c[c.index("-n") + 1] for c in cmds] == list(PRESETS)


def test_an_override_wins_over_the_presets_value_and_appears_once():
    cmd = dvc_exp_command("quick", queue=True, overrides={"train.steps": "7", "model.variant": "fem"})
    sets = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-S"]
    assert "train.steps=7" in sets and "train.steps=400" not in sets
    assert sets[-1] == "model.variant=fem" and len(sets) == len(PRESETS["quick"]) + 1
    assert cmd[:8] == [sys.executable, "-m", "dvc", "exp", "run", "-n", "quick", "--queue"]


def test_the_quick_preset_trains_on_a_set_it_builds():
    # quick builds SR/bicubic sets for the test split only; its train set must not be one of them
    assert "[test]" in PRESETS["quick"]["sr.infer.splits"]
    assert PRESETS["quick"].get("train.train_set", "hr") in {"hr", "lr", "hr_copypaste"}


ECHO = "import json, yaml\np = yaml.safe_load(open('params.yaml'))\njson.dump({'steps': p['train']['steps']}, open('m.json', 'w'))\n"


@pytest.fixture
def dvc_repo(tmp_path) -> Path:
    """A real git + DVC repo whose one stage copies train.steps into its metrics file."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"model": {"variant": "ssd"}, "train": {"steps": 1}}))
    (tmp_path / "echo.py").write_text(ECHO)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"echo": {
        "cmd": "python echo.py", "deps": ["echo.py"], "params": ["train.steps", "model.variant"],
        "metrics": [{"m.json": {"cache": False}}]}}}))
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], [*git, "add", "-A"],
                [*git, "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, env=env())
    return tmp_path


def env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def presets(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.presets", *args], cwd=repo, env=env(),
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_run_passes_overrides_to_a_real_dvc_experiment_and_queue_queues(dvc_repo):
    ran = presets(dvc_repo, "run", "shallow", "-S", "train.steps=7")
    assert ran.returncode == 0, ran.stderr
    assert "$ dvc exp run -n shallow -S model.variant=shallow -S train.steps=7" in ran.stdout
    assert json.loads((dvc_repo / "m.json").read_text()) == {"steps": 7}  # the stage saw the override
    listed = subprocess.run([sys.executable, "-m", "dvc", "exp", "list", "--name-only"], cwd=dvc_repo, env=env(),
                            capture_output=True, text=True, check=True).stdout.split()
    assert listed == ["shallow"]

    queued = presets(dvc_repo, "run", "fem", "--queue", "-S", "train.steps=3")
    assert queued.returncode == 0, queued.stderr
    assert "dvc queue start" in queued.stdout
    status = subprocess.run([sys.executable, "-m", "dvc", "queue", "status"], cwd=dvc_repo, env=env(),
                            capture_output=True, text=True, check=True).stdout
    assert "fem" in status.split() and status.count("Queued") == 1, status
