"""Ingest: correct tables from VOC/COCO layouts, every bad-input case, fail vs skip."""

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import run_cli
from pipeline.data.degrade import DegradeConfig, degrade_set
from pipeline.data.embedded import EMBEDDED_CLASSES, EmbeddedConfig
from pipeline.data.images import write_image
from pipeline.data.ingest import IngestConfig, IngestError, ingest
from pipeline.data.schema import read_records, read_table
from pipeline.data.sources import DataConfig, fetch
from pipeline.data.stats import compute_stats
from pipeline.data.voc import parse_voc_xml
from pipeline.sr.pairs import match_sets

REPO = Path(__file__).resolve().parents[2]
FAIL, SKIP = IngestConfig(), IngestConfig(on_error="skip")
TINY = EmbeddedConfig(num_train=5, num_test=4, objects_per_image=(2, 4), image_size=(160, 200))


@pytest.fixture
def voc_raw(tmp_path) -> Path:
    raw = tmp_path / "raw"
    fetch(DataConfig(embedded=TINY), 0, raw, progress=False)
    return raw


def _voc(raw: Path) -> Path:
    return raw / "VOCdevkit" / "SOD5"


def _set_box(xml: Path, obj: int, **vals: float) -> None:
    """Rewrite bndbox values of object ``obj`` in a VOC XML file."""
    text = xml.read_text()
    parts = text.split("<object>")
    for k, v in vals.items():
        parts[obj + 1] = re.sub(rf"<{k}>[^<]*</{k}>", f"<{k}>{v}</{k}>", parts[obj + 1])
    xml.write_text("<object>".join(parts))


def test_embedded_ingest_matches_annotations(voc_raw, tmp_path):
    out, rep = tmp_path / "hr", tmp_path / "report.json"
    report = ingest(voc_raw, out, FAIL, report_path=rep, progress=False)
    recs, classes = read_records(out)
    assert classes == list(EMBEDDED_CLASSES)
    assert [r.split for r in recs].count("train") == 5 and [r.split for r in recs].count("test") == 4
    r = recs[0]
    assert r.image_id == "SOD5/000000" and r.file_name == "SOD5/000000.jpg"
    ann = parse_voc_xml(_voc(voc_raw) / "Annotations/000000.xml")
    want = np.array([[o.box[0] - 1, o.box[1] - 1, o.box[2], o.box[3]] for o in ann.objects], np.float32)
    np.testing.assert_array_equal(r.boxes, want)
    assert [classes[i] for i in r.labels] == [o.name for o in ann.objects]
    src = _voc(voc_raw) / "JPEGImages/000000.jpg"
    dst = out / "images" / r.file_name
    assert dst.read_bytes() == src.read_bytes() and dst.stat().st_ino == src.stat().st_ino  # hard link
    saved = json.loads(rep.read_text())
    assert saved == json.loads(json.dumps(report))
    assert saved["counts"]["train"]["images"] == 5 and saved["skipped"] == []
    assert saved["counts"]["train"]["objects"] + saved["counts"]["test"]["objects"] == sum(len(x) for x in recs)


def _break_voc(raw: Path) -> dict[str, str]:
    """Apply one of each bad-input case; returns {case: substring expected in its problem}."""
    v = _voc(raw)
    (v / "JPEGImages/000000.jpg").write_bytes((v / "JPEGImages/000000.jpg").read_bytes()[:600])  # corrupt
    (v / "Annotations/000001.xml").write_text("<annotation><size>")  # malformed
    xml2 = v / "Annotations/000002.xml"
    xml2.write_text(xml2.read_text().replace("<name>", "<name>unicorn_", 1))  # unknown class
    _set_box(v / "Annotations/000003.xml", 0, xmin=50, xmax=40)  # degenerate
    _set_box(v / "Annotations/000004.xml", 0, xmax=500)  # far outside
    (v / "JPEGImages/000005.jpg").unlink()  # missing image
    (v / "Annotations/000006.xml").unlink()  # missing annotation
    xml7 = v / "Annotations/000007.xml"
    xml7.write_text(re.sub(r"<width>\d+</width>", "<width>999</width>", xml7.read_text()))  # size mismatch
    return {
        "000000": "cannot decode image",
        "000001": "malformed XML",
        "000002": "unknown class",
        "000003": "degenerate box",
        "000004": "outside the",
        "000005": "image file not found",
        "000006": "annotation file not found",
        "000007": "but the annotation says",
    }


def test_fail_lists_every_problem_and_writes_nothing(voc_raw, tmp_path):
    cases = _break_voc(voc_raw)
    out, rep = tmp_path / "hr", tmp_path / "report.json"
    with pytest.raises(IngestError) as info:
        ingest(voc_raw, out, FAIL, report_path=rep, progress=False)
    msg = str(info.value)
    for iid, text in cases.items():
        assert any(iid in str(p) and text in str(p) for p in info.value.problems), (iid, text, msg)
        assert text in msg
    assert "000004.xml" in msg and "000005.jpg" in msg  # problems name the file
    assert not out.exists() and not rep.exists()
    assert not any(p.name.startswith(".hr") for p in tmp_path.iterdir())  # no temp leftovers


def test_skip_drops_bad_records_and_reports_them(voc_raw, tmp_path):
    _break_voc(voc_raw)
    v = _voc(voc_raw)
    n_obj = {i: len(parse_voc_xml(v / f"Annotations/00000{i}.xml").objects) for i in (2, 3, 4)}
    out, rep = tmp_path / "hr", tmp_path / "report.json"
    ingest(voc_raw, out, SKIP, report_path=rep, progress=False)
    report = json.loads(rep.read_text())
    recs = {r.image_id: r for r in read_records(out)[0]}
    # image-level problems drop the image
    for i in ("000000", "000001", "000005", "000006", "000007"):
        assert f"SOD5/{i}" not in recs
    # object-level problems drop only the object
    for i in (2, 3, 4):
        assert len(recs[f"SOD5/00000{i}"]) == n_obj[i] - 1
    assert report["skipped_images"] == 5 and report["skipped_objects"] == 3
    assert len(report["skipped"]) == 8
    assert {s["level"] for s in report["skipped"]} == {"image", "object"}
    assert all(s["file"] and s["problem"] for s in report["skipped"])
    assert report["counts"]["train"]["images"] + report["counts"]["test"]["images"] == len(recs) == 4  # 000008 keeps the test split non-empty
    assert not (out / "images/SOD5/000000.jpg").exists()


def test_one_pixel_overshoot_is_clipped(voc_raw, tmp_path):
    v = _voc(voc_raw)
    ann = parse_voc_xml(v / "Annotations/000000.xml")
    _set_box(v / "Annotations/000000.xml", 0, xmin=0, xmax=ann.width + 1)  # VOC's usual 1-px overshoot
    _set_box(v / "Annotations/000000.xml", 1, ymax=ann.height + 1.5)  # 1.5 px: too far
    with pytest.raises(IngestError) as info:
        ingest(voc_raw, tmp_path / "hr", FAIL, progress=False)
    assert len(info.value.problems) == 1 and "outside the" in str(info.value)
    _set_box(v / "Annotations/000000.xml", 1, ymax=ann.height)
    report = ingest(voc_raw, tmp_path / "hr", FAIL, progress=False)
    assert report["clipped_boxes"] == 1
    rec = read_records(tmp_path / "hr")[0][0]
    assert rec.boxes[0, 0] == 0 and rec.boxes[0, 2] == ann.width


def test_verify_header_misses_truncation_decode_catches_it(voc_raw, tmp_path):
    jpg = _voc(voc_raw) / "JPEGImages/000000.jpg"
    jpg.write_bytes(jpg.read_bytes()[: len(jpg.read_bytes()) // 2])  # header intact, data truncated
    ingest(voc_raw, tmp_path / "a", IngestConfig(verify_images="header"), progress=False)
    with pytest.raises(IngestError, match="cannot decode image"):
        ingest(voc_raw, tmp_path / "b", FAIL, progress=False)


def test_empty_images_kept(voc_raw, tmp_path):
    xml = _voc(voc_raw) / "Annotations/000000.xml"
    xml.write_text(re.sub(r"<object>.*</object>", "", xml.read_text(), flags=re.S))
    ingest(voc_raw, tmp_path / "hr", FAIL, progress=False)
    recs = {r.image_id: r for r in read_records(tmp_path / "hr")[0]}
    assert len(recs["SOD5/000000"]) == 0 and len(recs) == 9


def test_rerun_replaces_set_atomically(voc_raw, tmp_path):
    out = tmp_path / "hr"
    ingest(voc_raw, out, FAIL, progress=False)
    (out / "stale.txt").write_text("old")
    ingest(voc_raw, out, FAIL, progress=False)
    assert not (out / "stale.txt").exists() and (out / "annotations.parquet").is_file()


# --- COCO -----------------------------------------------------------------------------

def _coco_folder(root: Path) -> Path:
    """A small genuine-format COCO folder: val images + instances JSON (category ids 1, 3, 7)."""
    rng = np.random.default_rng(0)
    images = []
    for i, (w, h) in enumerate([(64, 48), (80, 60), (50, 50), (70, 40)], start=1):
        name = f"{i:012d}.jpg"
        write_image(root / "val2017" / name, rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        images.append({"id": i, "file_name": name, "width": w, "height": h})
    anns = [
        {"id": 10, "image_id": 1, "category_id": 3, "bbox": [2, 3, 10, 20], "iscrowd": 0},
        {"id": 11, "image_id": 1, "category_id": 7, "bbox": [30.5, 1, 20, 15.5], "iscrowd": 1},
        {"id": 12, "image_id": 2, "category_id": 1, "bbox": [0, 0, 80, 60], "iscrowd": 0},
    ]  # image 3 and 4 have no objects
    cats = [{"id": 7, "name": "kite"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    doc = {"images": images, "annotations": anns, "categories": cats}
    (root / "annotations/instances_val2017.json").write_text(json.dumps(doc))
    write_image(root / "test2017/t.jpg", rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))  # the test split
    test_doc = {"images": [{"id": 101, "file_name": "t.jpg", "width": 60, "height": 40}], "annotations": [],
                "categories": cats}
    (root / "annotations/instances_test2017.json").write_text(json.dumps(test_doc))
    return root


def _coco_raw(tmp_path: Path, doc_edit=None) -> Path:
    root = _coco_folder(tmp_path / "coco")
    if doc_edit:
        p = root / "annotations/instances_val2017.json"
        doc = json.loads(p.read_text())
        doc_edit(doc, root)
        p.write_text(json.dumps(doc))
    cfg = DataConfig(source="local", local_path=str(root), local_format="coco",
                     local_train=("val2017",), local_test=("test2017",))
    fetch(cfg, 0, tmp_path / "raw", progress=False)
    return tmp_path / "raw"


def test_coco_ingest(tmp_path):
    raw = _coco_raw(tmp_path)
    ingest(raw, tmp_path / "hr", FAIL, progress=False)
    recs, classes = read_records(tmp_path / "hr")
    assert classes == ["person", "car", "kite"]  # category-id order
    r1 = recs[0]
    assert r1.image_id == "1" and r1.file_name == "val2017/000000000001.jpg"
    np.testing.assert_allclose(r1.boxes, [[2, 3, 12, 23], [30.5, 1, 50.5, 16.5]])
    assert r1.labels.tolist() == [1, 2] and r1.iscrowd.tolist() == [False, True]
    assert len(recs) == 5 and len(recs[2]) == 0 and len(recs[3]) == 0  # empty images kept
    assert recs[4].split == "test" and recs[4].file_name == "test2017/t.jpg"
    assert read_table(tmp_path / "hr/annotations.parquet").num_rows == 6


def test_coco_bad_records(tmp_path):
    def edit(doc, root):
        doc["annotations"] += [
            {"id": 20, "image_id": 2, "category_id": 99, "bbox": [1, 1, 5, 5]},  # unknown class
            {"id": 21, "image_id": 2, "category_id": 1, "bbox": [1, 1, 0, 5]},  # degenerate
            {"id": 22, "image_id": 2, "category_id": 1, "bbox": [70, 1, 20, 5]},  # outside
            {"id": 23, "image_id": 2, "category_id": 1, "bbox": "oops"},  # malformed
            {"id": 24, "image_id": 555, "category_id": 1, "bbox": [1, 1, 5, 5]},  # orphan
        ]
        (root / "val2017/000000000003.jpg").unlink()  # missing image
        (root / "val2017/000000000004.jpg").write_bytes(b"not a jpeg")  # unreadable image

    raw = _coco_raw(tmp_path, edit)
    with pytest.raises(IngestError) as info:
        ingest(raw, tmp_path / "hr", FAIL, progress=False)
    msg = str(info.value)
    for text in ("unknown class", "degenerate box", "outside the 80x60", "is not 4 numbers",
                 "unknown image id 555", "image file not found", "cannot decode image"):
        assert text in msg, text
    assert len(info.value.problems) == 7
    report = ingest(raw, tmp_path / "hr", SKIP, progress=False)
    recs = {r.image_id: r for r in read_records(tmp_path / "hr")[0]}
    assert sorted(recs) == ["1", "101", "2"] and len(recs["2"]) == 1
    assert report["skipped_images"] == 2 and report["skipped_objects"] == 5


def test_coco_malformed_json_always_fails(tmp_path):
    raw = _coco_raw(tmp_path)
    ann = Path(json.loads((raw / "source.json").read_text())["splits"]["train"][0]["annotations"])
    ann.write_text('{"images": [')
    for cfg in (FAIL, SKIP):
        with pytest.raises(IngestError, match=r"instances_val2017\.json: malformed JSON"):
            ingest(raw, tmp_path / "hr", cfg, progress=False)
    assert not (tmp_path / "hr").exists()


# --- image ids are unique per split (issue 15 item 1) -------------------------------------

def _two_json_coco(root: Path, train_ids=(1, 2), test_ids=(1,)) -> Path:
    """COCO folder whose train and test JSONs number their own images from 1, all in one ``images/``.

    Returns the raw folder (fetched as a local source).  Train images are 64x48, test 40x30, so a
    merged or swapped record shows; image ``k`` of a split has ``k`` objects, areas 100*k.
    """
    rng = np.random.default_rng(0)
    cats = [{"id": 1, "name": "ball"}]
    (root / "annotations").mkdir(parents=True)
    for split, ids, (w, h) in (("train", train_ids, (64, 48)), ("test", test_ids, (40, 30))):
        images, anns = [], []
        for n, iid in enumerate(ids, start=1):
            name = f"{split}_{n}.jpg"
            write_image(root / "images" / name, rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
            images.append({"id": iid, "file_name": name, "width": w, "height": h})
            anns += [{"id": 100 * n + k, "image_id": iid, "category_id": 1, "bbox": [k, k, 20, 20],
                      "area": 100.0 * n, "iscrowd": 0} for k in range(n)]
        (root / "annotations" / f"{split}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats}))
    fetch(DataConfig(source="local", local_path=str(root), local_format="coco",
                     local_train=("images:annotations/train.json",), local_test=("images:annotations/test.json",)),
          0, root / "raw", progress=False)
    return root / "raw"


def test_same_coco_id_in_train_and_test_ingests_fully_and_stays_apart(tmp_path):
    raw = _two_json_coco(tmp_path / "coco")  # train ids 1, 2; test id 1: a different image
    report = ingest(raw, tmp_path / "hr", FAIL, progress=False)
    assert report["skipped"] == [] and report["counts"]["train"]["images"] == 2
    assert report["counts"]["test"]["images"] == 1
    train, _ = read_records(tmp_path / "hr", "train")
    (test,), _ = read_records(tmp_path / "hr", "test")
    assert [(r.image_id, r.file_name, r.width, len(r)) for r in train] == [("1", "images/train_1.jpg", 64, 1),
                                                                          ("2", "images/train_2.jpg", 64, 2)]
    assert (test.image_id, test.file_name, test.width, test.height, len(test)) == ("1", "images/test_1.jpg", 40, 30, 1)
    assert (tmp_path / "hr/images/images/test_1.jpg").read_bytes() == (tmp_path / "coco/images/test_1.jpg").read_bytes()
    # ... and through stats: train 3 objects on 2 images, test 1 on 1, nothing merged
    s = compute_stats(read_records(tmp_path / "hr")[0], ["ball"])
    assert [(s.splits[k]["images"], s.splits[k]["instances"]) for k in ("train", "test")] == [(2, 3), (1, 1)]
    assert s.overall["images"] == 3 and s.size_measure == "coco_area"
    # ... and through degrade and SR pairing (keyed by split and id): each HR image meets its own LR image
    degrade_set(tmp_path / "hr", tmp_path / "lr", DegradeConfig(scale=2, workers=1), progress=False)
    pairs, _ = match_sets(tmp_path / "hr", tmp_path / "lr", 2)
    assert [(p.hr.split, p.hr.image_id, p.lr.file_name, p.lr.width) for p in pairs] == [
        ("train", "1", "images/train_1.jpg", 32), ("train", "2", "images/train_2.jpg", 32),
        ("test", "1", "images/test_1.jpg", 20)]


def test_an_id_twice_in_one_split_is_still_a_problem(tmp_path):
    raw = _two_json_coco(tmp_path / "coco", train_ids=(1, 2), test_ids=(5, 6))
    desc = json.loads((raw / "source.json").read_text())
    desc["splits"]["train"].append(desc["splits"]["test"][0] | {"annotations": desc["splits"]["train"][0]["annotations"]})
    (raw / "source.json").write_text(json.dumps(desc))  # the train JSON listed twice for train
    with pytest.raises(IngestError) as info:
        ingest(raw, tmp_path / "hr", FAIL, progress=False)
    assert [str(p).split(": ", 1)[1] for p in info.value.problems] == [
        "image 1 is listed twice in split 'train'", "image 2 is listed twice in split 'train'"]


def test_one_file_in_both_splits_is_refused(tmp_path):
    raw = _two_json_coco(tmp_path / "coco")
    test_json = tmp_path / "coco/annotations/test.json"
    doc = json.loads(test_json.read_text())
    doc["images"][0] |= {"file_name": "train_1.jpg", "width": 64, "height": 48}  # the train image, as test id 1
    test_json.write_text(json.dumps(doc))
    with pytest.raises(IngestError, match=r"file 'images/train_1.jpg' is also image 1's \(split 'train'\)"):
        ingest(raw, tmp_path / "hr", FAIL, progress=False)


def test_a_split_emptied_by_skipping_fails_the_stage_in_one_line(tmp_path, capsys):
    raw = _two_json_coco(tmp_path / "coco")
    good = (tmp_path / "coco/images/test_1.jpg").read_bytes()
    (tmp_path / "coco/images/test_1.jpg").write_bytes(b"not a jpeg")  # the only test image
    (tmp_path / "params.yaml").write_text("ingest:\n  on_error: skip\n")
    spec = importlib.util.spec_from_file_location("ingest_stage", REPO / "stages" / "ingest.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    argv = ["--raw", str(raw), "--out", str(tmp_path / "hr"), "--report", str(tmp_path / "r.json"),
            "--params", str(tmp_path / "params.yaml")]
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: stage.main(argv))
    err = capsys.readouterr().err.split("\r")[-1].split("\n", 1)[1]  # after tqdm's progress bars
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: ingest found 2 problem(s)") and "split 'test' has no images after ingest" in err
    assert "test_1.jpg: cannot decode image" in err
    assert not (tmp_path / "hr").exists() and not (tmp_path / "r.json").exists()
    (tmp_path / "coco/images/test_1.jpg").write_bytes(good)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: stage.main(argv))
    assert exit_info.value.code == 0 and json.loads((tmp_path / "r.json").read_text())["size_measure"] == "coco_area"
    assert "test 1 / 1, skipped 0 record(s); sizes by coco_area" in capsys.readouterr().out


def test_coco_area_json_booleans_are_not_numbers_odd_areas_follow_cocoeval(tmp_path):
    def edit(doc, root):
        doc["annotations"] = [
            {"id": 30, "image_id": 1, "category_id": 3, "bbox": [2, 3, 10, 20], "area": True},  # not a number
            {"id": 31, "image_id": 1, "category_id": 3, "bbox": [2, 3, True, 20]},  # not a number
            {"id": 32, "image_id": 2, "category_id": 3, "bbox": [2, 3, 10, 10], "area": 10000.0},  # > box: as given
            {"id": 33, "image_id": 2, "category_id": 3, "bbox": [2, 3, 40, 40], "area": float("nan")},  # = absent
            {"id": 34, "image_id": 2, "category_id": 3, "bbox": [2, 3, 40, 40], "area": 1024},  # 32²: medium
        ]

    raw = _coco_raw(tmp_path, edit)
    with pytest.raises(IngestError) as info:
        ingest(raw, tmp_path / "hr", FAIL, progress=False)
    assert [str(p).split(": ", 1)[1] for p in info.value.problems] == [
        "annotation 30 of image 1: area True is not a positive number",
        "annotation 31 of image 1: bbox [2, 3, True, 20] is not 4 numbers"]
    report = ingest(raw, tmp_path / "hr", SKIP, progress=False)
    rec = {r.image_id: r for r in read_records(tmp_path / "hr")[0]}["2"]
    np.testing.assert_array_equal(rec.object_areas(), [10000.0, 1600.0, 1024.0])
    c = report["counts"]["train"]
    assert (c["small"], c["medium"], c["large"]) == (0, 2, 1) and report["size_measure"] == "mixed"


def test_coco_json_types_booleans_lists_and_fractions_are_problems_not_ids(tmp_path):
    def edit(doc, root):
        doc["annotations"] += [
            {"id": 40, "image_id": [1], "category_id": 3, "bbox": [1, 1, 5, 5]},  # unhashable: was a TypeError
            {"id": 41, "image_id": True, "category_id": 3, "bbox": [1, 1, 5, 5]},  # true is not image 1
            {"id": 42, "image_id": 1, "category_id": True, "bbox": [1, 1, 5, 5]},  # true is not category 1
        ]

    raw = _coco_raw(tmp_path, edit)
    with pytest.raises(IngestError) as info:
        ingest(raw, tmp_path / "hr", FAIL, progress=False)
    assert [str(p).split(": ", 1)[1] for p in info.value.problems] == [
        "annotation 40 refers to unknown image id [1]", "annotation 41 refers to unknown image id True",
        "object 2 (True) of image 1: unknown class"]
    for field, value in (("id", True), ("width", 64.5)):
        def bad_image(doc, root, field=field, value=value):
            doc["images"][0][field] = value

        raw = _coco_raw(tmp_path / field, bad_image)
        with pytest.raises(IngestError, match=rf"images\[0\] lacks a valid id/file_name/width/height .*{value}"):
            ingest(raw, tmp_path / field / "hr", SKIP, progress=False)
