"""Bad preset names and ``-S`` overrides fail before any experiment starts, in one line naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError
from pipeline.presets import commands, parse_override

REPO = Path(__file__).resolve().parents[2]
PARAMS = REPO / "params.yaml"


@pytest.mark.parametrize("text", ["train.steps", "=5", "train..steps=1", ".steps=1", "train.=1", " =1"])
def test_a_malformed_override_is_named(text):
    with pytest.raises(ConfigError, match=r"expected key=value with a dotted params.yaml key"):
        parse_override(text)


def test_a_value_may_hold_equals_signs_and_yaml():
    assert parse_override("evaluate.methods.hard={method: nms}") == ("evaluate.methods.hard", "{method: nms}")
    assert parse_override("data.local_path=/a=b") == ("data.local_path", "/a=b")


# (override, message fragment)
KEY_CASES = [
    ("train.stesp=5", "-S train.stesp: no key 'stesp' under train of params.yaml; did you mean 'steps'?"),
    ("trian.steps=5", "no key 'trian' under the top level of params.yaml; did you mean 'train'?"),
    ("train.steps.max=5", "-S train.steps.max: params.yaml key 'train.steps' is a value, not a section"),
    ("model.zzz=1", "no key 'zzz' under model of params.yaml; known: ["),
]


@pytest.mark.parametrize("override,fragment", KEY_CASES, ids=[c[0] for c in KEY_CASES])
def test_an_unknown_key_is_named_with_a_suggestion(override, fragment):
    with pytest.raises(ConfigError) as err:
        commands(["quick"], [override], queue=False, params_file=PARAMS)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_new_entries_of_user_named_mappings_are_accepted():
    cmds = commands(["baseline"], ["evaluate.methods.hard={method: nms}", "data.checksums.x.zip=md5:00"],
                    queue=False, params_file=PARAMS)
    assert "evaluate.methods.hard={method: nms}" in cmds[0]


def test_names_are_checked_before_params_and_params_before_any_run(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset 'quik'; did you mean 'quick'"):
        commands(["baseline", "quik"], ["train.stesp=1"], queue=False, params_file=tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match="params file not found"):
        commands(["baseline"], [], queue=False, params_file=tmp_path / "none.yaml")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"model": {"variant": "ssd"}}))
    with pytest.raises(ConfigError, match="no key 'train' under the top level"):  # 2nd preset's key, 1st never run
        commands(["baseline", "copypaste"], [], queue=False, params_file=tmp_path / "p.yaml")


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "pipeline.presets", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_errors_are_one_line_with_exit_2(tmp_path):
    (tmp_path / "params.yaml").write_text(PARAMS.read_text())
    bad_key = run_cli(tmp_path, "run", "quick", "-S", "train.stesp=1")
    assert (bad_key.returncode, bad_key.stdout) == (2, "")
    assert bad_key.stderr == "error: -S train.stesp: no key 'stesp' under train of params.yaml; did you mean 'steps'?\n"
    # not a DVC repository: dvc's own error is printed, then one line naming the preset, exit 2
    no_repo = run_cli(tmp_path, "run", "baseline")
    assert no_repo.returncode == 2
    assert no_repo.stderr.strip().splitlines()[-1] == "error: dvc exp run for preset 'baseline' failed (its error is above)"
    assert "Traceback" not in no_repo.stderr
