"""Limits (issue 10, item 6, and the name-resolution bit of item 5): decompression-bomb images,
archive bombs, empty archives and empty splits are clear, per-file errors; an unresolvable
host fails at once.

Real files: PNG/JPEG headers patched to declare huge sizes, zip and tar.gz archives of
zeros, an embedded VOC source, and a real DNS lookup of a ``.invalid`` name (RFC 6761:
never resolves).
"""

from __future__ import annotations

import hashlib
import io
import struct
import tarfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import ConfigError, section
from pipeline.data.download import ArchiveError, DownloadError, ExtractLimits, download, extract
from pipeline.data.embedded import EmbeddedConfig
from pipeline.data.images import ImageError, image_size, read_image, write_image
from pipeline.data.ingest import IngestConfig, IngestError, ingest
from pipeline.data.schema import read_records
from pipeline.data.sources import DataConfig, fetch

TINY = EmbeddedConfig(num_train=3, num_test=2, objects_per_image=(1, 3), image_size=(128, 160))
ZEROS = 8 << 20  # 8 MiB of zeros deflate ~1000x


def _png_bomb(path: Path, w: int, h: int) -> None:
    """A 1x1 PNG whose IHDR declares ``w`` x ``h`` (CRC fixed, so only the size is wrong)."""
    buf = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def _jpeg_bomb(path: Path, w: int, h: int) -> None:
    """A small real JPEG whose SOF0 header declares ``w`` x ``h``."""
    write_image(path, np.zeros((8, 8, 3), np.uint8), quality=90)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", h, w)
    path.write_bytes(bytes(data))


def test_bomb_headers_are_image_errors_naming_the_file(tmp_path: Path) -> None:
    _png_bomb(tmp_path / "bomb.png", 20_000, 20_000)
    _jpeg_bomb(tmp_path / "bomb.jpg", 60_000, 60_000)
    for name in ("bomb.png", "bomb.jpg"):
        for read in (read_image, image_size):
            with pytest.raises(ImageError, match=rf"{name}: .*(pixel limit|over the limit)"):
                read(tmp_path / name)
    write_image(tmp_path / "ok.jpg", np.zeros((80, 100, 3), np.uint8))
    assert image_size(tmp_path / "ok.jpg", max_pixels=8000) == (100, 80)
    with pytest.raises(ImageError, match=r"ok.jpg: image declares 100x80 = 8000 pixels, over the limit of 7999"):
        read_image(tmp_path / "ok.jpg", max_pixels=7999)


@pytest.fixture
def voc_raw(tmp_path: Path) -> Path:
    fetch(DataConfig(embedded=TINY), 0, tmp_path / "raw", progress=False)
    return tmp_path / "raw"


@pytest.mark.parametrize("verify", ["decode", "header"])
def test_bomb_in_a_source_is_a_listed_problem_never_a_crash(voc_raw: Path, tmp_path: Path, verify: str) -> None:
    jpgs = voc_raw / "VOCdevkit/SOD5/JPEGImages"
    _png_bomb(jpgs / "000001.jpg", 30_000, 30_000)  # PNG bytes under a .jpg name: identified by content
    _jpeg_bomb(jpgs / "000003.jpg", 65_000, 65_000)
    with pytest.raises(IngestError) as info:
        ingest(voc_raw, tmp_path / "hr", IngestConfig(verify_images=verify), progress=False)
    assert sorted(p.image_id for p in info.value.problems) == ["SOD5/000001", "SOD5/000003"]
    assert "000001.jpg: declared image size is over the pixel limit" in str(info.value)
    assert not (tmp_path / "hr").exists()
    report = ingest(voc_raw, tmp_path / "hr", IngestConfig(on_error="skip", verify_images=verify), progress=False)
    assert report["skipped_images"] == 2 and {s["image_id"] for s in report["skipped"]} == {"SOD5/000001",
                                                                                          "SOD5/000003"}
    assert all("pixel limit" in s["problem"] for s in report["skipped"])
    assert len(read_records(tmp_path / "hr")[0]) == 3


def test_max_image_pixels_param(voc_raw: Path, tmp_path: Path) -> None:
    cfg = section({"ingest": {"max_image_pixels": 1000, "on_error": "skip"}}, "ingest", IngestConfig)
    with pytest.raises(IngestError, match=r"split 'train' has no images after ingest \(3 problem"):
        ingest(voc_raw, tmp_path / "hr", cfg, progress=False)  # every 128-160 px image is over 1000 px
    for bad in (0, 178_956_971, 1.5, "big"):
        with pytest.raises(ConfigError, match="ingest.max_image_pixels"):
            section({"ingest": {"max_image_pixels": bad}}, "ingest", IngestConfig)


def test_empty_split_is_an_error_even_when_skipping(voc_raw: Path, tmp_path: Path) -> None:
    voc = voc_raw / "VOCdevkit/SOD5"
    for iid in ("000003", "000004"):  # both test images unreadable
        (voc / "JPEGImages" / f"{iid}.jpg").write_bytes(b"not an image")
    with pytest.raises(IngestError, match=r"split 'test' has no images after ingest \(2 problem") as info:
        ingest(voc_raw, tmp_path / "hr", IngestConfig(on_error="skip"), progress=False)
    assert "000004.jpg: cannot decode image" in str(info.value)  # the skips say why
    (voc / "ImageSets/Main/test.txt").write_text("")  # an empty list
    with pytest.raises(IngestError, match=r"source.json: split 'test' has no images after ingest$"):
        ingest(voc_raw, tmp_path / "hr", IngestConfig(), progress=False)
    assert not (tmp_path / "hr").exists()


# --- archives ----------------------------------------------------------------------------------

def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tgz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _refused(archive: Path, target: Path, text: str, limits: ExtractLimits | None = None) -> None:
    with pytest.raises(ArchiveError, match=text):
        extract(archive, target, progress=False, limits=limits or ExtractLimits())
    assert not target.exists() and [p.name for p in target.parent.iterdir()] == [archive.name]  # no temp left


@pytest.mark.parametrize("make", [_zip, _tgz])
def test_archive_bombs_and_limits_name_archive_and_member(tmp_path: Path, make) -> None:
    small = {"a/1.jpg": np.random.default_rng(0).bytes(600), "a/2.jpg": np.random.default_rng(1).bytes(600),
             "a/3.jpg": b"x" * 10, "a/4.jpg": b"y" * 10}
    cases = [
        ({"a/ok.txt": b"hi", "a/zeros.bin": bytes(ZEROS)}, ExtractLimits(), r"member 'a/zeros.bin' brings .* "
         r"over data.extract.max_ratio = 100"),
        (small, ExtractLimits(max_bytes=1000), r"member 'a/2.jpg' brings the uncompressed size to 1200 bytes, "
         r"over data.extract.max_bytes = 1000"),
        (small, ExtractLimits(max_members=3), r"member 'a/4.jpg' is member number 4, over "
         r"data.extract.max_members = 3"),
    ]
    for k, (members, limits, text) in enumerate(cases):
        d = tmp_path / str(k)
        d.mkdir()
        archive = make(d / f"arch{k}.{'zip' if make is _zip else 'tar.gz'}", members)
        _refused(archive, d / "out", rf"arch{k}\.(zip|tar\.gz): {text}", limits)
    extract(make(tmp_path / f"fine.{'zip' if make is _zip else 'tgz'}", small), tmp_path / "fine", progress=False)
    assert (tmp_path / "fine/a/1.jpg").read_bytes() == small["a/1.jpg"]


def test_empty_corrupt_and_non_archives_are_errors(tmp_path: Path) -> None:
    cases = {
        "empty.zip": _zip(tmp_path / "x", {}).read_bytes(),
        "dirs_only.zip": _zip(tmp_path / "y", {"a/": b""}).read_bytes(),
        "empty.tar.gz": _tgz(tmp_path / "z", {}).read_bytes(),
        "zero_bytes.tar": b"",
        "random.zip": np.random.default_rng(0).bytes(5000),
    }
    texts = {"empty.zip": "archive holds no files", "dirs_only.zip": "archive holds no files",
             "empty.tar.gz": "archive holds no files", "zero_bytes.tar": "not a tar or zip archive",
             "random.zip": "not a tar or zip archive"}
    tgz = _tgz(tmp_path / "t", {"a.bin": np.random.default_rng(2).bytes(200_000)}).read_bytes()
    cases["truncated.tar.gz"], texts["truncated.tar.gz"] = tgz[: len(tgz) // 2], "corrupt archive"
    for name, data in cases.items():
        d = tmp_path / name.replace(".", "_")
        d.mkdir()
        (d / name).write_bytes(data)
        _refused(d / name, d / "out", rf"{name}: {texts[name]}")


def test_fetch_applies_data_extract_limits(tmp_path: Path) -> None:
    """The params reach extraction: a cached (checksum-verified) VOC archive that is a bomb."""
    name = "VOCtrainval_06-Nov-2007.tar"
    (tmp_path / "downloads").mkdir()
    bomb = _tgz(tmp_path / "downloads" / name, {"VOCdevkit/VOC2007/zeros.bin": bytes(ZEROS)})
    params = {"source": "voc2007", "download_dir": str(tmp_path / "downloads"),
              "checksums": {name: "md5:" + hashlib.md5(bomb.read_bytes()).hexdigest()},
              "extract": {"max_ratio": 2000.0, "max_bytes": 4 << 20}}
    cfg = section({"data": params}, "data", DataConfig)
    with pytest.raises(ArchiveError, match=rf"{name}: member 'VOCdevkit/VOC2007/zeros.bin' .* data.extract.max_bytes = 4194304"):
        fetch(cfg, 0, tmp_path / "raw", progress=False)
    assert not (tmp_path / "raw" / "VOCtrainval_06-Nov-2007").exists()
    for key, bad in (("max_ratio", 0.5), ("max_bytes", 0), ("max_members", 0)):
        with pytest.raises(ConfigError, match=f"data.extract.{key}"):
            section({"data": {"extract": {key: bad}}}, "data", DataConfig)


# --- name resolution -----------------------------------------------------------------------------

def test_unresolvable_host_fails_at_once_without_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # a proxy would answer for the host itself
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"http://nonexistent\.invalid/x\.tar: cannot resolve host "
                                            r"'nonexistent\.invalid' .*not retried"):
        download("http://nonexistent.invalid/x.tar", tmp_path / "x.tar", "md5:" + "0" * 32, retries=5, backoff=30.0,
                 progress=False)
    assert time.monotonic() - start < 20  # one retry alone would sleep 30 s
    assert not (tmp_path / "x.tar").exists() and not (tmp_path / "x.tar.part").exists()
