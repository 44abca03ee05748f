"""A local source is part of what DVC tracks (issue 15 item 3), and hostile source folders.

In a real DVC repo (a copy of this project) on a tiny real COCO-layout folder: editing one
annotation re-runs fetch and the stages below it; an untouched or merely touched source
re-runs nothing but the cheap ``source`` stage.  Then what the fingerprint does with broken
links, pipes, link cycles, linked folders, a corrupt memo and a bad fingerprint file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.data.fingerprint import read_fingerprint, source_fingerprint, write_fingerprint
from pipeline.data.schema import read_records
from pipeline.data.sources import DataConfig, SourceError
from tests.e2e.conftest import copy_project
from tests.local_source_helpers import drop_annotation, make_coco_source

REPO = Path(__file__).resolve().parents[2]
DATA_STAGES = ("source", "fetch", "ingest", "stats")


def _ran(stdout: str) -> set[str]:
    return {line.split("'")[1] for line in stdout.splitlines() if line.startswith("Running stage")}


def _local(src: Path) -> DataConfig:
    return DataConfig(source="local", local_path=str(src), local_format="coco")


@pytest.mark.slow
def test_dvc_reruns_from_fetch_exactly_when_the_local_source_changes(tmp_path):
    src = make_coco_source(tmp_path / "coco")
    proj = copy_project(tmp_path / "proj", {"data": {"source": "local", "local_path": str(src), "local_format": "coco"}})
    first = proj.dvc("repro", "stats")
    assert _ran(first.stdout) == set(DATA_STAGES), first.stdout
    test_objects = lambda: sum(len(r) for r in read_records(proj.root / "data/sets/hr")[0] if r.split == "test")  # noqa: E731
    assert test_objects() == 2

    ann = src / "annotations/instances_val2017.json"
    os.utime(ann, ns=(ann.stat().st_atime_ns, ann.stat().st_mtime_ns + 10**9))  # touched, same bytes
    again = proj.dvc("repro", "stats")  # unchanged content: only the fingerprint is recomputed
    assert _ran(again.stdout) == {"source"}, again.stdout
    assert "Stage 'fetch' didn't change, skipping" in again.stdout
    assert proj.dvc("status", "fetch", "ingest", "stats").stdout.strip() == "Data and pipelines are up to date."

    assert drop_annotation(src) == 1  # the case: an annotation deleted from the local JSON
    edited = proj.dvc("repro", "stats")
    assert _ran(edited.stdout) == set(DATA_STAGES), edited.stdout
    assert test_objects() == 1  # the set below fetch has the edit


def test_broken_link_in_the_source_is_one_line_naming_it(tmp_path):
    src = make_coco_source(tmp_path / "coco")
    (src / "train2017/000000000007.jpg").symlink_to(tmp_path / "gone.jpg")
    with pytest.raises(SourceError, match=r"cannot read .*train2017/000000000007\.jpg: a broken link"):
        source_fingerprint(_local(src))


def test_named_pipe_is_refused_not_read(tmp_path):
    """A FIFO among the images would block a read forever: it is named instead."""
    src = make_coco_source(tmp_path / "coco")
    os.mkfifo(src / "val2017/pipe.jpg")
    with pytest.raises(SourceError, match=r"cannot read .*val2017/pipe\.jpg: not a regular file"):
        source_fingerprint(_local(src))


def test_link_cycle_is_an_error_not_a_hang(tmp_path):
    src = make_coco_source(tmp_path / "coco")
    (src / "train2017/loop").symlink_to(src / "train2017", target_is_directory=True)
    with pytest.raises(SourceError, match=r"train2017/loop is a link back to its own parent folder"):
        source_fingerprint(_local(src))


def test_linked_folders_are_followed_and_two_links_to_one_folder_are_fine(tmp_path):
    real = make_coco_source(tmp_path / "real")
    src = tmp_path / "linked"
    src.mkdir()
    for sub in ("train2017", "val2017", "annotations"):
        (src / sub).symlink_to(real / sub, target_is_directory=True)
    (real / "val2017/again").symlink_to(real / "train2017", target_is_directory=True)  # not a cycle
    before = source_fingerprint(_local(src))
    drop_annotation(real)  # edited behind the link
    after = source_fingerprint(_local(src))
    changed = [k for k in before["content"] if before["content"][k] != after["content"][k]]
    assert changed == [str((real / "annotations/instances_val2017.json").resolve())]


def test_corrupt_or_foreign_memo_is_ignored(tmp_path):
    src = make_coco_source(tmp_path / "coco")
    clean = source_fingerprint(_local(src))
    memo = tmp_path / "memo.json"
    memo.write_text("{not json")
    assert write_fingerprint(_local(src), tmp_path / "fp.json", memo) == clean
    assert json.loads(memo.read_text())  # rewritten as a valid memo
    # An entry whose recorded stat no longer matches the file is re-read, whatever digest it holds.
    state = json.loads(memo.read_text())
    key = str((src / "val2017/000000000003.jpg").resolve())
    state[key] = [state[key][0] + 1, *state[key][1:3], "0" * 32]
    memo.write_text(json.dumps(state))
    assert write_fingerprint(_local(src), tmp_path / "fp.json", memo) == clean


def test_missing_source_folder_or_annotation_is_one_line(tmp_path):
    with pytest.raises(SourceError, match="data.local_path: .* is not a directory"):
        source_fingerprint(_local(tmp_path / "nowhere"))
    src = make_coco_source(tmp_path / "coco")
    (src / "annotations/instances_val2017.json").unlink()
    with pytest.raises(SourceError, match=r"data.local_test: annotation file .*instances_val2017.json not found"):
        source_fingerprint(_local(src))


@pytest.mark.parametrize("content", [None, "{trunc", "[1, 2]", b"\xff\xfe"])
def test_bad_fingerprint_file_is_one_line(tmp_path, content):
    path = tmp_path / "fingerprint.json"
    if content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(SourceError, match=r"fingerprint\.json: .*run the source stage"):
        read_fingerprint(path)


def test_source_stage_cli_error_is_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text(f"data:\n  source: local\n  local_path: {tmp_path / 'nowhere'}\n")
    r = subprocess.run([sys.executable, str(REPO / "stages/source.py"), "--out", "fp.json"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: data.local_path:"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "fp.json").exists()
