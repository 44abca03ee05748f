"""Resumable, checksum-verified downloads and safe archive extraction.

* :func:`download` streams ``url`` to ``<dest>.part``; a later call resumes the part
  with an HTTP ``Range`` request (a server answering 200 instead of 206 restarts the
  file cleanly), retries transient failures with exponential backoff, shows a tqdm
  bar, verifies the checksum and only then renames the part onto ``dest``.
* :func:`extract` unpacks a tar (Python's ``filter="data"`` plus an explicit
  rejection of absolute and ``..`` member names) or a zip (absolute paths, ``..``
  components and symlink entries rejected) into a temp directory beside the target
  and renames it into place, so a rejected archive leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from pipeline.atomic import atomic_dir
from pipeline.errors import PipelineError

CHUNK = 1 << 20
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(PipelineError, RuntimeError):
    """A download failed for good (HTTP error, retries exhausted)."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the pinned checksum."""


class UnsafeArchiveError(PipelineError, ValueError):
    """An archive member would land outside the extraction directory (or is a link)."""


class _Incomplete(Exception):
    """The connection ended before Content-Length bytes arrived (transient)."""


def parse_checksum(checksum: str) -> tuple[str, str]:
    """``"md5:<hex>"`` / ``"sha256:<hex>"`` -> (algorithm, lowercase hex digest)."""
    m = re.fullmatch(r"(md5|sha1|sha256):([0-9a-fA-F]+)", checksum.strip())
    if not m:
        raise ValueError(f"checksum {checksum!r} must look like 'md5:<hex>' or 'sha256:<hex>'")
    algo, digest = m.group(1), m.group(2).lower()
    if len(digest) != hashlib.new(algo).digest_size * 2:
        raise ValueError(f"checksum {checksum!r}: wrong digest length for {algo}")
    return algo, digest


def file_digest(path: str | os.PathLike[str], algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify(path: str | os.PathLike[str], checksum: str) -> bool:
    algo, digest = parse_checksum(checksum)
    return file_digest(path, algo) == digest


def _fetch_once(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One HTTP attempt: resume ``part`` if the server honours Range, else restart it."""
    offset = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "small-object-pipeline/0.1"})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        length = resp.headers.get("Content-Length")
        if offset and resp.status == 206:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                raise _Incomplete(f"server resumed at an unexpected offset ({resp.headers.get('Content-Range')})")
            mode = "ab"
        else:  # 200: no Range support (or fresh start) -> restart cleanly
            offset, mode = 0, "wb"
        total = offset + int(length) if length is not None else None
        got = offset
        with open(part, mode) as f, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, desc=part.name[: -len(".part")],
            disable=not progress, leave=False,
        ) as bar:
            while chunk := resp.read(CHUNK):
                f.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
        if total is not None and got < total:
            raise _Incomplete(f"got {got} of {total} bytes")


def download(
    url: str,
    dest: str | os.PathLike[str],
    checksum: str,
    *,
    retries: int = 5,
    backoff: float = 2.0,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` unless a file with the right checksum is already there.

    Args:
        checksum: ``"md5:<hex>"`` or ``"sha256:<hex>"``; verified before ``dest`` appears.
        retries: extra attempts after transient errors (connection reset/refused,
            timeouts, short bodies, HTTP 408/429/5xx); attempt ``k`` waits ``backoff * 2**k`` s.
    Raises:
        ChecksumError: the finished download does not match (the bad file is removed).
        DownloadError: a permanent HTTP error or retries exhausted.
    """
    dest = Path(dest)
    parse_checksum(checksum)  # fail fast on a malformed pin
    if dest.is_file():
        if verify(dest, checksum):
            return dest
        dest.unlink()  # stale or corrupt cache entry: fetch again
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout, progress)
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and part.exists():  # range past the end: part may be complete
                if verify(part, checksum):
                    break
                part.unlink()
            elif exc.code not in _TRANSIENT_HTTP:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
            last = exc
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError,
                TimeoutError, _Incomplete) as exc:
            last = exc
        if attempt < retries:
            time.sleep(backoff * 2**attempt)
    else:
        raise DownloadError(f"{url}: failed after {retries + 1} attempts ({last})")
    algo, digest = parse_checksum(checksum)
    actual = file_digest(part, algo)
    if actual != digest:
        part.unlink()
        raise ChecksumError(f"{url}: {algo} mismatch (expected {digest}, got {actual}); removed the download")
    os.replace(part, dest)
    return dest


def _check_member_name(archive: Path, name: str) -> None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in p.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} would extract outside the target")


def _extract_tar(archive: Path, into: Path) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for m in members:
            _check_member_name(archive, m.name)
        try:
            tf.extractall(into, members=members, filter="data")
        except tarfile.FilterError as exc:  # links escaping, absolute link targets, devices
            raise UnsafeArchiveError(f"{archive}: {exc}") from exc


def _extract_zip(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_member_name(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                # zipfile would write the link target as a plain file; a link may also escape.
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link")
        zf.extractall(into, members=infos)


def extract(archive: str | os.PathLike[str], target: str | os.PathLike[str], progress: bool = True) -> Path:
    """Safely unpack a .tar(.gz/.bz2/.xz) or .zip ``archive`` into ``target`` (atomic swap)."""
    archive, target = Path(archive), Path(target)
    with atomic_dir(target) as tmp:
        if progress:
            tqdm.write(f"extracting {archive.name} -> {target}")
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, tmp)
        else:
            raise ValueError(f"{archive}: not a tar or zip archive")
    return target
