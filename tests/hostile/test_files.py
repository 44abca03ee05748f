"""Files and processes: outputs honour the umask, a killed run leaves no litter for
the next run, and two ingests into one output give a clear error."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.atomic import atomic_dir, atomic_path, sweep_stale
from pipeline.data.schema import read_records
from pipeline.runlock import output_lock

REPO = Path(__file__).resolve().parents[2]
ENV = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO), "HOME": "/nonexistent"}


def _params(root: Path, num_train: int = 3, num_test: int = 2, size=(128, 160)) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump({
        "seed": 1, "ingest": {"on_error": "fail"},
        "data": {"source": "embedded", "embedded": {"num_train": num_train, "num_test": num_test,
                                                    "image_size": list(size), "objects_per_image": [1, 2]}},
    }))


def _stage(root: Path, *args: str, umask: int = 0o022) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "stages" / args[0]), *args[1:]], cwd=root, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, umask=umask)


def _modes(root: Path) -> tuple[set[int], set[int]]:
    files, dirs = set(), set()
    for p in root.rglob("*"):
        (dirs if p.is_dir() else files).add(stat.S_IMODE(p.stat().st_mode))
    return files, dirs


@pytest.mark.parametrize("umask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_outputs_honour_the_umask(tmp_path, umask, file_mode, dir_mode):
    """A real fetch (atomic_dir + per-image atomic_path + write_json) under two umasks."""
    _params(tmp_path)
    p = _stage(tmp_path, "fetch.py", "--out", "data/raw", umask=umask)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    files, dirs = _modes(tmp_path / "data/raw")
    assert files == {file_mode} and dirs == {dir_mode}, (oct(umask), sorted(map(oct, files)), sorted(map(oct, dirs)))


def test_atomic_helpers_use_umask_modes_in_process(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("{}")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temps_of_dead_writers_are_swept_live_ones_kept(tmp_path):
    dead, live = _dead_pid(), os.getppid()
    stale_dir = tmp_path / f".out.tmp-{dead}-0123abcd.tmp"
    (stale_dir / "images").mkdir(parents=True)
    (stale_dir / "images" / "big.bin").write_bytes(b"\0" * (1 << 20))
    stale_file = tmp_path / f".metrics.json.tmp-{dead}-89abcdef.json"
    stale_file.write_text("{")
    live_dir = tmp_path / f".out.tmp-{live}-fedcba98.tmp"
    live_dir.mkdir()
    old = tmp_path / ".out.old"
    old.mkdir()
    user_file = tmp_path / ".out.tmp-notes"  # not ours: no pid/random part
    user_file.write_text("keep")
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "ok").write_text("1")
    assert not stale_dir.exists() and not stale_file.exists() and not old.exists()
    assert live_dir.is_dir() and user_file.is_file()
    assert (tmp_path / "out" / "ok").read_text() == "1"
    assert sweep_stale(tmp_path) == []  # nothing left to sweep; the live writer's temp stays


def test_a_killed_fetch_leaves_no_temp_folder_after_the_next_run(tmp_path):
    """Kill fetch while it writes the embedded set (the folder that stayed inside data/raw), rerun it."""
    _params(tmp_path, num_train=400, num_test=10, size=(300, 400))
    p = _stage(tmp_path, "fetch.py", "--out", "data/raw")
    parent = tmp_path / "data/raw/VOCdevkit"
    deadline = time.monotonic() + 120
    while not any(parent.glob(".SOD5.tmp-*/JPEGImages/*.jpg")):
        assert p.poll() is None and time.monotonic() < deadline, "fetch finished before it could be killed"
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert list(parent.glob(".SOD5.tmp-*")), "the kill left a temp folder (the case under test)"
    _params(tmp_path)
    p = _stage(tmp_path, "fetch.py", "--out", "data/raw")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    leftovers = [q for q in (tmp_path / "data/raw").rglob("*") if q.name.startswith(".")]  # any temp naming
    assert leftovers == []
    assert (parent / "SOD5" / "ImageSets").is_dir()


@pytest.fixture(scope="module")
def fetched(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fetched")
    _params(root)
    p = _stage(root, "fetch.py", "--out", "data/raw")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return root


def _ingest(root: Path, name: str) -> subprocess.Popen:
    return _stage(root, "ingest.py", "--raw", "data/raw", "--out", f"data/sets/{name}", "--report",
                  f"data/reports/{name}.json")


def test_an_ingest_into_a_busy_output_is_a_clear_error(fetched):
    with output_lock(fetched / "data/sets/busy", "ingest"):
        p = _ingest(fetched, "busy")
        _, err = p.communicate(timeout=120)
    assert p.returncode == 2, err
    assert err.strip().splitlines() == [
        "error: data/sets/busy: another ingest is writing this output right now (lock data/sets/.busy.lock)"]
    assert not (fetched / "data/sets/busy").exists()


def test_two_ingests_at_once_give_one_set_and_at_most_a_clear_error(fetched):
    procs = [_ingest(fetched, "both") for _ in range(2)]
    results = [(p.communicate(timeout=120)[1], p.returncode) for p in procs]
    for err, code in results:
        assert code == 0 or (code == 2 and "another ingest is writing" in err), err
    assert any(code == 0 for _, code in results)
    records, _ = read_records(fetched / "data/sets/both")
    assert len(records) == 5
    assert [q.name for q in (fetched / "data/sets").iterdir() if q.name.startswith(".both.tmp-")] == []
