"""Sources end to end: loopback 'voc2007' download, local VOC/COCO on genuine data, a local
source's content fingerprint, stage CLIs."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

import pipeline.hashing as hashing
from pipeline.config import ConfigError, section
from pipeline.data.fingerprint import source_fingerprint, write_fingerprint
from pipeline.data.ingest import IngestConfig, IngestError, ingest
from pipeline.data.schema import read_records
from pipeline.data.sources import ARCHIVES, DataConfig, SourceError, fetch
from pipeline.data.voc import VOC_CLASSES, parse_voc_xml, read_id_list
from tests.local_source_helpers import drop_annotation, make_coco_source

REPO = Path(__file__).resolve().parents[2]


def _voc_tar(path: Path, voc2007: Path, split: str) -> str:
    """A VOC-layout tar (VOCdevkit/VOC2007/...) of the genuine images in one split list; returns md5 pin."""
    ids = read_id_list(voc2007 / f"ImageSets/Main/{split}.txt")
    with tarfile.open(path, "w") as tf:
        for i in ids:
            for sub, ext in (("JPEGImages", "jpg"), ("Annotations", "xml")):
                tf.add(voc2007 / sub / f"{i}.{ext}", f"VOCdevkit/VOC2007/{sub}/{i}.{ext}")
        tf.add(voc2007 / f"ImageSets/Main/{split}.txt", f"VOCdevkit/VOC2007/ImageSets/Main/{split}.txt")
    return "md5:" + hashlib.md5(path.read_bytes()).hexdigest()


def test_voc2007_download_fetch_ingest(http_server, shared_data, tmp_path):
    base, st = http_server
    voc = shared_data / "voc/VOCdevkit/VOC2007"
    pins = {}
    for name, split in (("VOCtrainval_06-Nov-2007.tar", "trainval"), ("VOCtest_06-Nov-2007.tar", "test")):
        pins[name] = _voc_tar(tmp_path / name, voc, split)
        st.files["/" + ARCHIVES[name].path] = (tmp_path / name).read_bytes()
    st.drop_once.add("/" + ARCHIVES["VOCtest_06-Nov-2007.tar"].path)  # one flaky transfer
    params = {"source": "voc2007", "voc_url": base + "/", "checksums": pins,
              "download_dir": str(tmp_path / "downloads"), "retries": 2, "backoff": 0.01}
    cfg = section({"data": params}, "data", DataConfig)
    raw = tmp_path / "raw"
    desc = fetch(cfg, 0, raw, progress=False)
    assert desc["archives"] == pins and desc["format"] == "voc"
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == sorted(pins)
    assert (raw / "VOCtest_06-Nov-2007/VOCdevkit/VOC2007/JPEGImages/000001.jpg").is_file()
    requests = len(st.log)
    fetch(cfg, 0, raw, progress=False)  # cached archives, already extracted: no traffic
    assert len(st.log) == requests

    report = ingest(raw, tmp_path / "hr", IngestConfig(), progress=False)
    recs, classes = read_records(tmp_path / "hr")
    assert classes == list(VOC_CLASSES)
    test_ids = read_id_list(voc / "ImageSets/Main/test.txt")
    assert sorted(r.image_id for r in recs if r.split == "test") == sorted(f"VOC2007/{i}" for i in test_ids)
    n_obj = sum(len(parse_voc_xml(voc / f"Annotations/{i}.xml").objects) for i in
                test_ids + read_id_list(voc / "ImageSets/Main/trainval.txt"))
    assert sum(len(r) for r in recs) == n_obj
    assert report["counts"]["test"]["images"] == len(test_ids)


def test_checksum_override_mismatch_fails(http_server, shared_data, tmp_path):
    base, st = http_server
    name = "VOCtrainval_06-Nov-2007.tar"
    _voc_tar(tmp_path / name, shared_data / "voc/VOCdevkit/VOC2007", "trainval")
    st.files["/" + ARCHIVES[name].path] = (tmp_path / name).read_bytes()
    cfg = DataConfig(source="voc2007", voc_url=base, download_dir=str(tmp_path / "dl"))  # genuine pins
    with pytest.raises(Exception, match="md5 mismatch"):
        fetch(cfg, 0, tmp_path / "raw", progress=False)
    assert not any((tmp_path / "dl").iterdir())


def test_local_voc2007_split_lists(shared_data, tmp_path):
    devkit = shared_data / "voc/VOCdevkit"
    cfg = DataConfig(source="local", local_path=str(devkit), local_train=("VOC2007/trainval",),
                     local_test=("VOC2007/test",))
    desc = fetch(cfg, 0, tmp_path / "raw", progress=False)
    assert Path(desc["splits"]["train"][0]["root"]) == (devkit / "VOC2007").resolve()  # recorded, not copied
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["source.json"]
    report = ingest(tmp_path / "raw", tmp_path / "hr", IngestConfig(), progress=False)
    assert report["counts"]["train"]["images"] == 6 and report["counts"]["test"]["images"] == 7
    n_obj = sum(len(parse_voc_xml(x).objects) for x in (devkit / "VOC2007/Annotations").glob("*.xml"))
    assert report["counts"]["train"]["objects"] + report["counts"]["test"]["objects"] == n_obj == 41
    assert report["counts"]["train"]["difficult"] + report["counts"]["test"]["difficult"] > 0
    recs = {r.image_id: r for r in read_records(tmp_path / "hr")[0]}
    r = recs["VOC2007/000001"]
    assert (r.width, r.height) == (353, 500) and r.boxes[0].tolist() == [47, 239, 195, 371]


def test_local_voc2012_year_folder_defaults(shared_data, tmp_path):
    year = shared_data / "voc/VOCdevkit/VOC2012"
    with pytest.raises(SourceError, match="test.txt not found"):  # default lists: trainval/test
        fetch(DataConfig(source="local", local_path=str(year)), 0, tmp_path / "raw", progress=False)
    cfg = DataConfig(source="local", local_path=str(year), local_train=("trainval",), local_test=())
    fetch(cfg, 0, tmp_path / "raw", progress=False)
    with pytest.raises(IngestError, match="split 'test' has no images"):  # a set without test images is no success
        ingest(tmp_path / "raw", tmp_path / "hr", IngestConfig(), progress=False)
    # A year folder whose data sub-folders are links (allowed: each root is resolved) and with a test list.
    mine = tmp_path / "VOC2012"
    (mine / "ImageSets/Main").mkdir(parents=True)
    for sub in ("Annotations", "JPEGImages"):
        (mine / sub).symlink_to(year / sub, target_is_directory=True)
    ids = (year / "ImageSets/Main/trainval.txt").read_text().split()
    (mine / "ImageSets/Main/trainval.txt").write_text("\n".join(ids[:90]))
    (mine / "ImageSets/Main/test.txt").write_text("\n".join(ids[90:]))
    fetch(DataConfig(source="local", local_path=str(mine)), 0, tmp_path / "raw2", progress=False)
    report = ingest(tmp_path / "raw2", tmp_path / "hr", IngestConfig(), progress=False)
    c = report["counts"]
    assert c["train"]["images"] == 90 and c["test"]["images"] == 10
    assert c["train"]["objects"] + c["test"]["objects"] == 273
    assert all(c["train"]["per_class"][k] + c["test"]["per_class"][k] > 0 for k in c["train"]["per_class"])


def test_local_coco(shared_data, tmp_path):
    cfg = DataConfig(source="local", local_path=str(shared_data / "coco"), local_format="coco")
    fetch(cfg, 0, tmp_path / "raw", progress=False)
    report = ingest(tmp_path / "raw", tmp_path / "hr", IngestConfig(), progress=False)  # genuine: no problems
    c = report["counts"]
    ann = shared_data / "coco/annotations"
    for split, name in (("train", "train2017"), ("test", "val2017")):
        doc = json.loads((ann / f"instances_{name}.json").read_text())
        assert c[split]["images"] == len(doc["images"]) and c[split]["objects"] == len(doc["annotations"])
    assert c["test"]["images"] == 80 and c["train"]["images"] == 208
    assert len(report["classes"]) == 80 and report["classes"][0] == "person"
    assert c["test"]["crowd"] + c["train"]["crowd"] > 0


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="data.source"):
        section({"data": {"source": "imagenet"}}, "data", DataConfig)
    with pytest.raises(ConfigError, match="data.checksums.nope.tar"):
        section({"data": {"checksums": {"nope.tar": "md5:" + "0" * 32}}}, "data", DataConfig)
    with pytest.raises(ConfigError, match="data.checksums.val2017.zip"):
        section({"data": {"checksums": {"val2017.zip": "abc"}}}, "data", DataConfig)
    with pytest.raises(ConfigError, match="data.local_path"):
        section({"data": {"source": "local"}}, "data", DataConfig)
    with pytest.raises(ConfigError, match="ingest.on_error"):
        section({"ingest": {"on_error": "ignore"}}, "ingest", IngestConfig)
    with pytest.raises(SourceError, match="not a directory"):
        fetch(DataConfig(source="local", local_path=str(tmp_path / "none")), 0, tmp_path / "raw")


def test_stage_clis(tmp_path):
    params = {"seed": 1, "data": {"source": "embedded", "embedded": {"num_train": 3, "num_test": 2}},
              "ingest": {"on_error": "fail"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run = lambda *a: subprocess.run([sys.executable, *a], cwd=tmp_path, capture_output=True, text=True)  # noqa: E731
    r = run(str(REPO / "stages/fetch.py"), "--out", "data/raw")
    assert r.returncode == 0, r.stderr
    r = run(str(REPO / "stages/ingest.py"), "--raw", "data/raw", "--out", "data/sets/hr",
            "--report", "data/reports/ingest_report.json")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "data/reports/ingest_report.json").read_text())
    assert report["counts"]["train"]["images"] == 3 and report["counts"]["test"]["images"] == 2
    (tmp_path / "data/raw/VOCdevkit/SOD5/Annotations/000000.xml").write_text("<annotation>")
    r = run(str(REPO / "stages/ingest.py"), "--raw", "data/raw", "--out", "data/sets/hr2",
            "--report", "data/reports/r2.json")
    assert r.returncode != 0 and "000000.xml: malformed XML" in r.stderr
    assert not (tmp_path / "data/sets/hr2").exists()


def _counting_reads(monkeypatch) -> list[Path]:
    """Record every file whose bytes the hash memo actually reads."""
    reads: list[Path] = []
    real = hashing.file_md5
    monkeypatch.setattr(hashing, "file_md5", lambda p: reads.append(Path(p)) or real(p))
    return reads


def test_local_fingerprint_follows_content_not_stat(tmp_path, monkeypatch):
    """Edits, additions, removals and rewrites change it; a touch does not; the memo spares re-reads."""

    src = make_coco_source(tmp_path / "coco")
    cfg = DataConfig(source="local", local_path=str(src), local_format="coco")
    out, memo = tmp_path / "fp.json", tmp_path / "memo.json"
    reads = _counting_reads(monkeypatch)
    fp0 = write_fingerprint(cfg, out, memo)
    ann = (src / "annotations/instances_val2017.json").resolve()
    assert set(fp0["content"]) == {str((src / p).resolve()) for p in
                                   ("train2017", "val2017", "annotations/instances_train2017.json", str(ann))}
    assert len(reads) == 5  # 3 images + 2 JSON files
    first = out.read_bytes()

    reads.clear()
    assert write_fingerprint(cfg, out, memo) == fp0 and out.read_bytes() == first and reads == []  # memo: stat only
    st = ann.stat()
    os.utime(ann, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched, same bytes
    assert write_fingerprint(cfg, out, memo) == fp0 and reads == [ann]

    drop_annotation(src)
    fp1 = write_fingerprint(cfg, out, memo)
    assert [k for k in fp0["content"] if fp0["content"][k] != fp1["content"][k]] == [str(ann)]
    extra = src / "train2017/000000000099.jpg"
    shutil.copy(src / "train2017/000000000001.jpg", extra)
    fp2 = write_fingerprint(cfg, out, memo)
    assert fp2 != fp1
    extra.unlink()
    assert write_fingerprint(cfg, out, memo) == fp1  # removed again: as before
    img = src / "val2017/000000000003.jpg"
    img.write_bytes(img.read_bytes()[:-1] + b"\0")
    assert write_fingerprint(cfg, out, memo) != fp1


def test_non_local_fingerprint_is_the_source_name_only(tmp_path):

    assert source_fingerprint(DataConfig()) == {"source": "embedded"}
    assert source_fingerprint(DataConfig(source="coco2017")) == {"source": "coco2017"}


def test_fetch_records_the_fingerprint_of_its_own_source(tmp_path):

    src = make_coco_source(tmp_path / "coco")
    cfg = DataConfig(source="local", local_path=str(src), local_format="coco")
    fp = source_fingerprint(cfg)
    fetch(cfg, 0, tmp_path / "raw", progress=False, fingerprint=fp)
    assert json.loads((tmp_path / "raw/source.json").read_text())["fingerprint"] == fp
    with pytest.raises(SourceError, match="fingerprint is of source 'embedded', params say data.source 'local'"):
        fetch(cfg, 0, tmp_path / "raw", progress=False, fingerprint={"source": "embedded"})
