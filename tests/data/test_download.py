import hashlib
import io
import os
import tarfile
import zipfile

import pytest

from pipeline.data.download import (
    ChecksumError,
    DownloadError,
    UnsafeArchiveError,
    download,
    extract,
    parse_checksum,
)


def _md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue()


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


PAYLOAD = os.urandom(300_000)


def test_download_verifies_and_caches(http_server, tmp_path):
    base, st = http_server
    st.files["/a.bin"] = PAYLOAD
    dest = download(f"{base}/a.bin", tmp_path / "a.bin", _md5(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "a.bin.part").exists()
    n = len(st.log)
    download(f"{base}/a.bin", dest, _md5(PAYLOAD), progress=False)  # cached: no request
    assert len(st.log) == n


def test_sha256_pin_accepted(http_server, tmp_path):
    base, st = http_server
    st.files["/a.bin"] = PAYLOAD
    pin = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
    assert download(f"{base}/a.bin", tmp_path / "a.bin", pin, progress=False).read_bytes() == PAYLOAD


def test_truncated_transfer_resumes_with_range(http_server, tmp_path):
    base, st = http_server
    st.files["/a.bin"] = PAYLOAD
    st.drop_once.add("/a.bin")
    dest = download(f"{base}/a.bin", tmp_path / "a.bin", _md5(PAYLOAD), backoff=0.01, progress=False)
    assert dest.read_bytes() == PAYLOAD
    (first, _, s1), (_, rng, s2) = st.log
    assert s1 == 200 and s2 == 206
    assert rng == f"bytes={len(PAYLOAD) // 2}-"  # resumed exactly where the body was cut


def test_existing_part_resumes_and_server_without_range_restarts(http_server, tmp_path):
    base, st = http_server
    st.files["/a.bin"] = PAYLOAD
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD[:1000])
    download(f"{base}/a.bin", tmp_path / "a.bin", _md5(PAYLOAD), progress=False)
    assert st.log[-1] == ("/a.bin", "bytes=1000-", 206)

    # A server that ignores Range answers 200: the part must be rewritten, not appended to.
    st.no_range = True
    (tmp_path / "b.bin.part").write_bytes(b"garbage-from-an-old-attempt")
    st.files["/b.bin"] = PAYLOAD
    dest = download(f"{base}/b.bin", tmp_path / "b.bin", _md5(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert st.log[-1][2] == 200


def test_transient_errors_retried_then_permanent_error(http_server, tmp_path):
    base, st = http_server
    st.files["/a.bin"] = PAYLOAD
    st.fail_first["/a.bin"] = 2
    download(f"{base}/a.bin", tmp_path / "a.bin", _md5(PAYLOAD), backoff=0.01, progress=False)
    assert [s for _, _, s in st.log] == [503, 503, 200]
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{base}/missing.bin", tmp_path / "m.bin", _md5(b""), backoff=0.01, progress=False)
    st.fail_first["/a.bin"] = 10
    with pytest.raises(DownloadError, match="after 3 attempts"):
        download(f"{base}/a.bin", tmp_path / "c.bin", _md5(PAYLOAD), retries=2, backoff=0.01, progress=False)


def test_checksum_mismatch_removes_file(http_server, tmp_path):
    base, st = http_server
    st.files["/a.bin"] = PAYLOAD
    with pytest.raises(ChecksumError, match="md5 mismatch"):
        download(f"{base}/a.bin", tmp_path / "a.bin", _md5(b"other"), progress=False)
    assert list(tmp_path.iterdir()) == []
    # A corrupt cached file is replaced by a fresh download.
    (tmp_path / "a.bin").write_bytes(b"corrupt")
    assert download(f"{base}/a.bin", tmp_path / "a.bin", _md5(PAYLOAD), progress=False).read_bytes() == PAYLOAD


def test_bad_checksum_spec():
    with pytest.raises(ValueError, match="md5:<hex>"):
        parse_checksum("c52e279531787c972589f7e41ab4ae64")
    with pytest.raises(ValueError, match="digest length"):
        parse_checksum("sha256:abcd")


def test_extract_tar_and_zip(tmp_path):
    tar = tmp_path / "ok.tar"
    tar.write_bytes(_tar([(_file("d/x.txt"), b"hello"), (_link("d/y.txt", "x.txt"), None)]))
    out = extract(tar, tmp_path / "out_tar", progress=False)
    assert (out / "d/x.txt").read_bytes() == b"hello"
    assert (out / "d/y.txt").read_bytes() == b"hello"
    z = tmp_path / "ok.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("d/x.txt", b"hi")
    assert (extract(z, tmp_path / "out_zip", progress=False) / "d/x.txt").read_bytes() == b"hi"


@pytest.mark.parametrize(
    "members",
    [
        [(_file("ok.txt"), b"fine"), (_file("../evil.txt"), b"pwned")],
        [(_file("ok.txt"), b"fine"), (_file("/tmp/evil-abs.txt"), b"pwned")],
        [(_file("ok.txt"), b"fine"), (_link("escape", "../../.."), None), (_file("escape/evil.txt"), b"x")],
        [(_file("ok.txt"), b"fine"), (_link("abs", "/etc/passwd"), None)],
    ],
    ids=["dotdot", "absolute", "symlink-out", "symlink-absolute"],
)
def test_malicious_tar_rejected(tmp_path, members):
    work = tmp_path / "work"
    work.mkdir()
    arc = work / "evil.tar"
    arc.write_bytes(_tar(members))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(UnsafeArchiveError):
        extract(arc, work / "out", progress=False)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing anywhere
    assert not os.path.exists("/tmp/evil-abs.txt")


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt", "link"])
def test_malicious_zip_rejected(tmp_path, name):
    work = tmp_path / "work"
    work.mkdir()
    arc = work / "evil.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        info = zipfile.ZipInfo(name)
        if name == "link":  # a symlink entry pointing outside
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "../../etc/passwd")
        else:
            zf.writestr(info, b"pwned")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(UnsafeArchiveError):
        extract(arc, work / "out", progress=False)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
