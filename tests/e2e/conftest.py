"""A real DVC project in a temp dir: the repo's tracked files, tiny params, a fresh git repo.

``reproduced`` is ONE tiny ``dvc repro`` of the whole pipeline per session, committed as the
baseline, which the tests that only read a finished pipeline share (full pipeline, study)."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = str(Path(sys.executable).parent)

# The evaluated sets and methods the whole-pipeline tests expect (one list: a new set goes here).
SETS = ("hr", "lr", "sr", "srgan", "bicubic")
METHODS = ("nms", "softnms")
COMMIT = ("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q")

# Tiny params so every stage runs in seconds on 2 CPU cores.
TINY: dict[str, Any] = {
    "data": {"embedded": {"num_train": 16, "num_test": 6}},
    "sr": {"train": {"pretrain_iters": 12, "gan_iters": 2, "checkpoint_every": 6, "log_every": 3},
           "perceptual": {"steps": 2, "batch_size": 2},  # sr_features: the SRGAN content loss's detector
           "infer": {"tile": 64, "tile_overlap": 16}},
    "train": {"steps": 3, "batch_size": 2, "warmup_steps": 1, "num_workers": 0, "checkpoint_every": 2, "log_every": 1},
    "evaluate": {"batch_size": 6, "pictures": 1, "bootstrap": {"resamples": 200},
                 "methods": {"nms": {"method": "nms"}, "softnms": {"method": "soft_linear"}}},
}


def deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def project_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    for k in list(env):
        if k.startswith("PREFECT_"):
            env.pop(k)
    env["PREFECT_HOME"] = str(root / ".prefect")
    env["PREFECT_LOGGING_LEVEL"] = "WARNING"
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # temporary servers: no telemetry calls
    env["DO_NOT_TRACK"] = "1"
    env["DVC_NO_ANALYTICS"] = "1"
    env["PYTHONPATH"] = str(root)
    return env


class Project:
    """A throw-away copy of this project with helpers to run commands in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = project_env(root)

    def run(self, *cmd: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(cmd), cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
        return proc

    def dvc(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args, **kw)

    def commit(self, message: str) -> None:
        """Commit everything (git add -A) in the project's git repo."""
        self.run("git", "add", "-A")
        self.run(*COMMIT, "-m", message)

    def restore(self) -> None:
        """Back to the last commit: tracked files from git, DVC outputs from the cache."""
        self.run("git", "reset", "-q", "--hard", "HEAD")
        self.dvc("checkout", "--force")

    def set_params(self, overrides: dict) -> None:
        path = self.root / "params.yaml"
        params = yaml.safe_load(path.read_text())
        path.write_text(yaml.safe_dump(deep_merge(params, overrides), sort_keys=False))


def copy_project(dst: Path, overrides: dict | None = None, api_url: str | None = None) -> Project:
    """Copy the project to ``dst`` with TINY params; flows report to ``api_url`` (a running server)
    when given, else each flow process starts Prefect's ephemeral server."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO_ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        src = REPO_ROOT / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    proj = Project(dst)
    if api_url:
        proj.env["PREFECT_API_URL"] = api_url
    proj.set_params(deep_merge(TINY, overrides or {}))
    proj.run("git", "init", "-q")
    proj.commit("init")
    return proj


@pytest.fixture
def project(tmp_path, prefect_server) -> Project:
    return copy_project(tmp_path / "proj", api_url=prefect_server)


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory, prefect_server) -> Project:
    """The whole pipeline reproduced once on TINY params and committed ("baseline").

    Tests use it through ``baseline``, which puts the workspace back afterwards."""
    proj = copy_project(tmp_path_factory.mktemp("reproduced") / "proj", api_url=prefect_server)
    proj.dvc("repro")
    proj.commit("baseline")
    return proj


@pytest.fixture
def baseline(reproduced) -> Iterator[Project]:
    """The shared reproduced project; restored to its baseline commit after the test (a
    ``dvc exp run`` applies its params and outputs to the workspace)."""
    yield reproduced
    reproduced.restore()
