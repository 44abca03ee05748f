"""Containment (issue 10, item 1): a name from dataset metadata or an annotation table never
reaches outside its root.

Real files throughout: an embedded VOC source and a COCO folder whose lists, XML and JSON
carry traversal, absolute and symlinked names, and real sets whose annotation table does.
A victim file outside (a real JPEG of the right size, so only containment stops it) must
keep its bytes and mtime, and nothing at all may change outside the stage's own output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.augment.copy_paste import CopyPasteConfig, copy_paste_set
from pipeline.data.degrade import DegradeConfig, degrade_set
from pipeline.data.embedded import EmbeddedConfig
from pipeline.data.images import write_image
from pipeline.data.ingest import IngestConfig, IngestError, ingest
from pipeline.data.schema import (
    ImageRecord,
    images_dir,
    read_records,
    records_to_table,
    table_path,
    write_table,
)
from pipeline.data.sources import DataConfig, fetch
from pipeline.detector.data import DetectionDataset
from pipeline.detector.model import ModelConfig, build_detector
from pipeline.detector.transforms import eval_transform
from pipeline.evaluation.infer import predict_set
from pipeline.paths import ContainmentError, inside
from pipeline.sr.config import SRInferConfig
from pipeline.sr.models import build_generator
from pipeline.sr.sets import make_sr_sets
from tests.conftest import build_set

TINY = EmbeddedConfig(num_train=3, num_test=2, objects_per_image=(1, 3), image_size=(128, 160))
VICTIM_SIZE = (48, 40)  # (w, h)


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: kind, bytes (files) or link target, and mtime — without following links."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if p.is_symlink():
                snap[str(p)] = ("link", os.readlink(p), st.st_mtime_ns)
            elif p.is_file():
                snap[str(p)] = ("file", p.read_bytes(), st.st_mtime_ns)
            else:
                snap[str(p)] = ("dir",)
    return snap


def _victim(tmp_path: Path) -> Path:
    """A real JPEG outside every root, with an old mtime."""
    victim = tmp_path / "outside" / "victim.jpg"
    w, h = VICTIM_SIZE
    write_image(victim, np.full((h, w, 3), 200, np.uint8))
    os.utime(victim, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    return victim


def test_inside_accepts_names_below_the_root_and_refuses_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    assert inside(root, "a.jpg") == (root / "a.jpg").resolve()
    assert inside(root, "sub/../b.jpg") == (root / "b.jpg").resolve()
    (tmp_path / "elsewhere").mkdir()
    (root / "sub" / "out").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "linked_root").symlink_to(root)
    assert inside(tmp_path / "linked_root", "sub/x.jpg") == (root / "sub" / "x.jpg").resolve()  # a linked root is fine
    for bad, text in [("../x.jpg", "outside"), ("sub/../../x.jpg", "outside"), ("/etc/passwd", "absolute"),
                      ("C:\\x.jpg", "absolute"), ("\\\\server\\share\\x.jpg", "absolute"), ("", "empty"),
                      ("a\x00.jpg", "NUL"), (".", "outside"), ("sub/out/x.jpg", "outside")]:
        with pytest.raises(ContainmentError, match=text) as info:
            inside(root, bad)
        assert repr(bad) in str(info.value) and str(root) in str(info.value)


def test_a_relative_root_follows_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for d in ("a", "b"):
        (tmp_path / d / "images").mkdir(parents=True)
        monkeypatch.chdir(tmp_path / d)
        assert inside("images", "x.jpg") == (tmp_path / d / "images" / "x.jpg").resolve()


# --- ingest: VOC ---------------------------------------------------------------------------

def _hostile_voc(tmp_path: Path) -> dict[str, str]:
    """An embedded VOC source with one hostile name of each kind; returns {image id: expected text}."""
    raw = tmp_path / "raw"
    fetch(DataConfig(embedded=TINY), 0, raw, progress=False)
    voc = raw / "VOCdevkit" / "SOD5"
    victim = _victim(tmp_path)
    shutil.copy(voc / "Annotations" / "000000.xml", victim.with_suffix(".xml"))  # would parse if reached
    traversal, absolute = "../../../../outside/victim", str(victim.with_suffix(""))
    with open(voc / "ImageSets/Main/train.txt", "a") as f:
        f.write(f"{traversal}\n{absolute}\n")
    xml = voc / "Annotations" / "000001.xml"
    xml.write_text(re.sub(r"<filename>[^<]*</filename>", "<filename>../../../../outside/victim.jpg</filename>",
                          xml.read_text()))
    (voc / "JPEGImages" / "000002.jpg").unlink()
    (voc / "JPEGImages" / "000002.jpg").symlink_to(victim)
    return {f"SOD5/{traversal}": "outside", f"SOD5/{absolute}": "is absolute",
            "SOD5/000001": "<filename>", "SOD5/000002": "outside"}


@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_voc_ids_xml_filename_and_links_stay_inside(tmp_path: Path, on_error: str) -> None:
    cases = _hostile_voc(tmp_path)
    before = _snapshot(tmp_path)
    out, report_path = tmp_path / "sets" / "hr", tmp_path / "sets" / "report.json"
    if on_error == "fail":
        with pytest.raises(IngestError) as info:
            ingest(tmp_path / "raw", out, IngestConfig(), report_path=report_path, progress=False)
        problems = info.value.problems
        assert not out.exists() and not report_path.exists()
    else:
        report = ingest(tmp_path / "raw", out, IngestConfig(on_error="skip"), report_path=report_path,
                        progress=False)
        problems = report["skipped"]
        kept = {r.image_id for r in read_records(out)[0]}
        assert kept == {"SOD5/000000", "SOD5/000003", "SOD5/000004"}
        assert sorted(p.name for p in images_dir(out).rglob("*") if p.is_file()) == [
            "000000.jpg", "000003.jpg", "000004.jpg"]
    for image_id, text in cases.items():
        hits = [p for p in problems if (p["image_id"] if isinstance(p, dict) else p.image_id) == image_id]
        assert len(hits) == 1 and text in str(hits[0]), (image_id, problems)
    assert len(problems) == len(cases)
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith(str(tmp_path / "sets"))} == before


# --- ingest: COCO --------------------------------------------------------------------------

def _hostile_coco(tmp_path: Path) -> dict[str, str]:
    """A COCO folder (train: val2017, test: test2017) with hostile file_names; returns {image id: text}."""
    root, victim = tmp_path / "coco", _victim(tmp_path)
    w, h = VICTIM_SIZE
    rng = np.random.default_rng(0)
    for d, name in (("val2017", "a.jpg"), ("val2017", "b.jpg"), ("test2017", "t.jpg")):
        write_image(root / d / name, rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    (root / "val2017" / "link.jpg").symlink_to(victim)
    names = {1: "a.jpg", 2: "b.jpg", 90: "../../outside/victim.jpg", 91: str(victim), 92: "link.jpg",
             93: "sub/../a.jpg"}
    cats = [{"id": 1, "name": "thing"}]
    (root / "annotations").mkdir()
    for split, images in (("val2017", names), ("test2017", {100: "t.jpg"})):
        doc = {"images": [{"id": i, "file_name": n, "width": w, "height": h} for i, n in images.items()],
               "annotations": [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 10, 10]} for i in images],
               "categories": cats}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    fetch(DataConfig(source="local", local_path=str(root), local_format="coco", local_train=("val2017",),
                     local_test=("test2017",)), 0, tmp_path / "raw", progress=False)
    return {"90": "outside", "91": "is absolute", "92": "outside", "93": "is also image 1's"}


@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_coco_file_names_stay_inside(tmp_path: Path, on_error: str) -> None:
    cases = _hostile_coco(tmp_path)
    before = _snapshot(tmp_path)
    out = tmp_path / "sets" / "hr"
    if on_error == "fail":
        with pytest.raises(IngestError) as info:
            ingest(tmp_path / "raw", out, IngestConfig(), progress=False)
        problems = [(p.image_id, str(p)) for p in info.value.problems]
        assert not out.exists()
    else:
        report = ingest(tmp_path / "raw", out, IngestConfig(on_error="skip"), progress=False)
        problems = [(p["image_id"], p["problem"]) for p in report["skipped"]]
        assert sorted(r.image_id for r in read_records(out)[0]) == ["1", "100", "2"]
        assert sorted(str(p.relative_to(images_dir(out))) for p in images_dir(out).rglob("*.jpg")) == [
            "test2017/t.jpg", "val2017/a.jpg", "val2017/b.jpg"]
    assert sorted(i for i, _ in problems) == sorted(cases)
    for image_id, text in problems:
        assert cases[image_id] in text, (image_id, text)
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith(str(tmp_path / "sets"))} == before


# --- later stages: a hostile annotation table ------------------------------------------------

@pytest.fixture(scope="module")
def clean_sets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HR set (2 train, 2 test images of the victim's size), its LR set and an SR generator, built once."""
    root = tmp_path_factory.mktemp("clean")
    w, h = VICTIM_SIZE
    box = np.array([[4, 4, 20, 18]], np.float32)
    recs = [ImageRecord(f"im{i}", f"im{i}.jpg", "train" if i < 2 else "test", w, h, box,
                        np.array([i % 2]), np.zeros(1, bool), np.zeros(1, bool)) for i in range(4)]
    build_set(root / "hr", recs, ["a", "b"])
    degrade_set(root / "hr", root / "lr", DegradeConfig(workers=1), progress=False)
    torch.save({"params": build_generator(8, 1).state_dict()}, root / "gen.pth")
    return root


HOSTILE = {"traversal": "../../outside/victim.jpg", "absolute": None, "symlink": "link.jpg"}


def _hostile_sets(clean: Path, tmp_path: Path, kind: str) -> tuple[Path, Path, Path]:
    """Copies of the clean sets whose tables name the victim for one train and one test image."""
    victim = _victim(tmp_path)
    name = HOSTILE[kind] or str(victim)
    for s in ("hr", "lr"):
        shutil.copytree(clean / s, tmp_path / s)
        if kind == "symlink":
            (images_dir(tmp_path / s) / name).symlink_to(victim)
        recs, classes = read_records(tmp_path / s)
        for r in recs:
            if r.image_id in ("im1", "im3"):
                r.file_name = name
        write_table(table_path(tmp_path / s), records_to_table(recs, classes))
    return tmp_path / "hr", tmp_path / "lr", victim


def _sr_sets(hr: Path, lr: Path, tmp_path: Path, clean: Path) -> None:
    make_sr_sets(lr, hr, {"sr": (clean / "gen.pth", tmp_path / "sr")}, tmp_path / "bic", tmp_path / "m.json", None,
                 SRInferConfig(tile=24, tile_overlap=8), device="cpu")


STAGES = {
    "degrade": lambda hr, lr, t, c: degrade_set(hr, t / "lr2", DegradeConfig(workers=1), progress=False),
    "copy_paste": lambda hr, lr, t, c: copy_paste_set(hr, t / "cp", CopyPasteConfig(probability=1.0, workers=1),
                                                   progress=False),
    "sr_sets": _sr_sets,
    "detector_dataset": lambda hr, lr, t, c: DetectionDataset(hr, "train", eval_transform(16)),
    "evaluation": lambda hr, lr, t, c: predict_set(
        build_detector(ModelConfig(width=0.125), 2, init_backbone=False), hr, "test", device="cpu"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
@pytest.mark.parametrize("stage", list(STAGES))
def test_hostile_file_name_in_the_table_is_a_clear_error(clean_sets: Path, tmp_path: Path, stage: str,
                                                         kind: str) -> None:
    hr, lr, victim = _hostile_sets(clean_sets, tmp_path, kind)
    before = _snapshot(tmp_path)
    with pytest.raises(ContainmentError, match="is absolute" if kind == "absolute" else "outside") as info:
        STAGES[stage](hr, lr, tmp_path, clean_sets)
    assert repr(HOSTILE[kind] or str(victim)) in str(info.value)
    assert _snapshot(tmp_path) == before  # the victim and everything else untouched, no output, no temp
