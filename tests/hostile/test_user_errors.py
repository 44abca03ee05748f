"""User errors are one line: ``error: <message>`` on stderr, exit code 2, no traceback.

Stage scripts and ``python -m pipeline.*`` CLIs run as real subprocesses on bad
params files; the validation behind each message is checked in-process too.
"""

from __future__ import annotations

import math
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipeline.cli import run_cli
from pipeline.config import ConfigError, parse, section, seed
from pipeline.data.degrade import DegradeConfig
from pipeline.detector.train import TrainConfig
from pipeline.errors import PipelineError
from pipeline.evaluation.config import EvaluateConfig

REPO = Path(__file__).resolve().parents[2]

# (case id, params.yaml text, command after `python`, expected message fragment)
CASES = [
    ("degrade-scale-inf", "degrade: {scale: .inf}\n",
     ["stages/degrade.py", "--input", "hr", "--output", "lr"], "degrade.scale: must be a downsampling factor in [1, 32]"),
    ("degrade-scale-1e6", "degrade: {scale: 1.0e+6}\n",
     ["stages/degrade.py", "--input", "hr", "--output", "lr"], "got 1000000.0"),
    ("stats-typo-key", "stats: {bin_pxx: 16}\n",
     ["stages/stats.py", "--set", "s", "--metrics", "m.json", "--plots", "p", "--figure", "f.png"],
     "stats.bin_pxx: unknown key; did you mean 'bin_px'?"),
    ("fetch-seed-text", "seed: abc\ndata: {source: embedded}\n", ["stages/fetch.py", "--out", "raw"],
     "seed: expected an integer, got 'abc'"),
    ("augment-section-typo", "seed: 1\naugmnt: {probability: 1.0}\n",
     ["stages/augment.py", "--input", "a", "--output", "b", "--metrics", "m.json", "--figure", "f.png"],
     "augment: params section missing; found 'augmnt'; misspelled?"),
    ("ingest-missing-raw", "ingest: {}\n",
     ["stages/ingest.py", "--raw", "nowhere", "--out", "hr", "--report", "r.json"], "nowhere"),
    ("no-params-file", None, ["stages/stats.py", "--set", "s", "--metrics", "m", "--plots", "p", "--figure", "f"],
     "params file not found: params.yaml"),
    ("python-m-presets", None, ["-m", "pipeline.presets", "run", "shalow"], "unknown preset 'shalow'; did you mean 'shallow'?"),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Run every case as its own process, two at a time."""
    procs = {}
    results = {}
    for case_id, params, cmd, _ in CASES:
        cwd = tmp_path_factory.mktemp(case_id)
        if params is not None:
            (cwd / "params.yaml").write_text(params)
        argv = [sys.executable, *(str(REPO / a) if a.startswith("stages/") else a for a in cmd)]
        procs[case_id] = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO),
                                               "PREFECT_HOME": str(cwd / ".prefect"), "HOME": str(cwd)})
        if len(procs) - len(results) >= 2:
            _collect(procs, results, wait_one=True)
    _collect(procs, results, wait_one=False)
    return results


def _collect(procs, results, wait_one: bool) -> None:
    for case_id, p in procs.items():
        if case_id in results:
            continue
        out, err = p.communicate(timeout=300)
        results[case_id] = subprocess.CompletedProcess(p.args, p.returncode, out, err)
        if wait_one:
            return


@pytest.mark.parametrize("case_id,fragment", [(c[0], c[3]) for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_input_is_one_error_line_with_exit_2(outcomes, case_id, fragment):
    r = outcomes[case_id]
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-3000:]
    assert fragment in lines[0]
    assert "Traceback" not in r.stdout + r.stderr


# Stages whose imports (torch, Prefect) take seconds per process: their ``main`` runs
# in-process under ``run_cli``, exactly as their ``__main__`` line does.
HEAVY = [
    ("train-typo-key", "model: {}\ntrain: {lrr: 0.1}\n", ["stages/train.py", "--train-set", "s", "--out", "o"],
     "train.lrr: unknown key; did you mean 'lr'?"),
    ("evaluate-unknown-device", "model: {}\nevaluate: {device: gpu}\n",
     ["stages/evaluate.py", "--checkpoint", "c.pt", "--set", "hr=s", "--reference", "s", "--out", "o"],
     "evaluate.device: unknown device 'gpu'"),
    ("train-missing-set", "model: {}\ntrain: {}\n", ["stages/train.py", "--train-set", "nowhere", "--out", "o"],
     "annotation table not found: nowhere/annotations.parquet"),
    ("evaluate-missing-set", "model: {}\nevaluate: {}\n",
     ["stages/evaluate.py", "--checkpoint", "c.pt", "--set", "hr=nowhere", "--reference", "nowhere", "--out", "o"],
     "annotation table not found: nowhere/annotations.parquet"),
    ("sr-train-seed-float", "seed: 1.9\nsr: {}\n", ["stages/sr_train.py", "--hr", "h", "--lr", "l", "--out", "o"],
     "seed: expected an integer, got 1.9"),
    ("sr-infer-no-section", "seed: 1\n",
     ["stages/sr_infer.py", "--lr", "l", "--hr", "h", "--model", "m", "--sr-out", "s", "--bicubic-out", "b",
      "--metrics", "m.json", "--figure", "f.png"], "sr: params section missing"),
]


@pytest.mark.parametrize("case_id,params,cmd,fragment", HEAVY, ids=[c[0] for c in HEAVY])
def test_heavy_stage_bad_input_is_one_error_line(tmp_path, monkeypatch, capsys, case_id, params, cmd, fragment):
    (tmp_path / "params.yaml").write_text(params)
    monkeypatch.chdir(tmp_path)
    main = runpy.run_path(str(REPO / cmd[0]), run_name="stage_under_test")["main"]
    with pytest.raises(SystemExit) as exc:
        run_cli(lambda: main(cmd[1:]))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert fragment in err


def test_run_cli_prints_one_line_and_leaves_bugs_alone(capsys):
    def bad() -> None:
        raise ConfigError("train.lr: must be > 0\n(second line)")

    with pytest.raises(SystemExit) as exc:
        run_cli(bad)
    assert exc.value.code == 2
    assert capsys.readouterr().err == "error: train.lr: must be > 0 (second line)\n"
    with pytest.raises(SystemExit) as exc:
        run_cli(lambda: 3)
    assert exc.value.code == 3

    def bug() -> None:
        raise KeyError("a bug keeps its traceback")

    with pytest.raises(KeyError):
        run_cli(bug)


def test_project_errors_share_one_base():
    from pipeline.data.download import ChecksumError, DownloadError, UnsafeArchiveError
    from pipeline.data.ingest import IngestError
    from pipeline.data.sources import SourceError
    from pipeline.detector.checkpoint import CheckpointError
    from pipeline.runlock import OutputBusyError

    for cls in (ConfigError, SourceError, IngestError, DownloadError, ChecksumError, UnsafeArchiveError,
                CheckpointError, OutputBusyError):
        assert issubclass(cls, PipelineError), cls


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError, match=r"^train\.lrr: unknown key; did you mean 'lr'\?$"):
        parse(TrainConfig, {"lrr": 0.1}, "train")
    with pytest.raises(ConfigError, match=r"train\.zzzz: unknown key; known: \["):
        parse(TrainConfig, {"zzzz": 1}, "train")


def test_missing_or_misspelled_section_is_an_error():
    with pytest.raises(ConfigError, match=r"^degrade: params section missing; found 'degrad'; misspelled\?$"):
        section({"degrad": {"scale": 2}}, "degrade", DegradeConfig)
    with pytest.raises(ConfigError, match=r"^degrade: params section missing; sections present: \['seed'\]$"):
        section({"seed": 0}, "degrade", DegradeConfig)
    assert section({"degrade": None}, "degrade", DegradeConfig) == DegradeConfig()  # `degrade:` = all defaults


@pytest.mark.parametrize("value", ["abc", 1.9, True, None, "1"])
def test_seed_must_be_an_integer(value):
    with pytest.raises(ConfigError, match="seed: expected an integer"):
        seed({"seed": value})


def test_seed_defaults_and_keeps_ints():
    assert seed({}) == 0 and seed({"seed": 7}) == 7


@pytest.mark.parametrize("device", ["gpu", "meta", "", "cuda:x", "tpu"])
def test_unknown_evaluate_device(device):
    with pytest.raises(ConfigError, match="evaluate.device: unknown device"):
        parse(EvaluateConfig, {"device": device}, "evaluate")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_device_without_cuda(device):
    with pytest.raises(ConfigError, match="evaluate.device: .* this machine has no CUDA device"):
        parse(EvaluateConfig, {"device": device}, "evaluate")


def test_valid_devices_pass():
    for device in ("auto", "cpu"):
        assert parse(EvaluateConfig, {"device": device}, "evaluate").device == device


@pytest.mark.parametrize("scale", [math.inf, -math.inf, math.nan, 1e6, 33, 0.5, 0])
def test_absurd_degrade_scale(scale):
    with pytest.raises(ConfigError, match=r"degrade\.scale: must be a downsampling factor in \[1, 32\]"):
        parse(DegradeConfig, {"scale": scale}, "degrade")


@pytest.mark.parametrize("scale", [1, 2, 4, 32])
def test_sane_degrade_scale(scale):
    assert parse(DegradeConfig, {"scale": scale}, "degrade").scale == scale
