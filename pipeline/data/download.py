"""Resumable, checksum-verified downloads and safe archive extraction.

* :func:`download` streams ``url`` to ``<dest>.part``; a later call resumes the part
  with an HTTP ``Range`` request (a server answering 200 instead of 206 restarts the
  file cleanly), retries transient failures with exponential backoff, shows a tqdm
  bar, verifies the checksum and only then renames the part onto ``dest``.
  A host name that does not resolve is a permanent error (no retries).
* :func:`extract` unpacks a tar (Python's ``filter="data"`` plus an explicit
  rejection of absolute and ``..`` member names) or a zip (absolute paths, ``..``
  components and symlink entries rejected) into a temp directory beside the target
  and renames it into place, so a rejected archive leaves nothing behind.  Before
  anything is written the member headers are checked against :class:`ExtractLimits`
  (member count, total uncompressed bytes, uncompressed / archive size): an archive
  bomb, or an archive without files, is an :class:`ArchiveError` naming the member.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import stat
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from pipeline.atomic import atomic_dir
from pipeline.config import require
from pipeline.errors import PipelineError

CHUNK = 1 << 20
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(PipelineError, RuntimeError):
    """A download failed for good (HTTP error, retries exhausted)."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the pinned checksum."""


class ArchiveError(PipelineError, ValueError):
    """An archive cannot be used: not an archive, corrupt, empty, or over an :class:`ExtractLimits` bound."""


class UnsafeArchiveError(ArchiveError):
    """An archive member would land outside the extraction directory (or is a link)."""


@dataclass(frozen=True)
class ExtractLimits:
    """Params section ``data.extract``: what one archive may unpack (zip/tar bomb guard).

    The defaults leave room for the largest supported archive (COCO ``train2017.zip``:
    118,287 files, 19 GB, ratio ~1; JSON annotations compress ~3x).

    Attributes:
        max_bytes: total uncompressed size of all members (declared in the headers,
            which zipfile and tarfile enforce while extracting).
        max_members: number of members (files, folders, links).
        max_ratio: total uncompressed size / archive file size.
    """

    max_bytes: int = 64 * 2**30
    max_members: int = 1_000_000
    max_ratio: float = 100.0

    def validate(self, prefix: str) -> None:
        require(self.max_bytes >= 1, f"{prefix}.max_bytes", f"must be >= 1, got {self.max_bytes}")
        require(self.max_members >= 1, f"{prefix}.max_members", f"must be >= 1, got {self.max_members}")
        require(self.max_ratio >= 1, f"{prefix}.max_ratio", f"must be >= 1, got {self.max_ratio}")


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
        DownloadError: a permanent HTTP error, an unresolvable host, or retries exhausted.
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
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, socket.gaierror):  # no such host / no DNS: retrying will not help
                host = urllib.parse.urlsplit(url).hostname
                raise DownloadError(f"{url}: cannot resolve host {host!r} ({exc.reason.strerror}); "
                                    "not retried") from exc
            last = exc
        except (http.client.HTTPException, ConnectionError, TimeoutError, _Incomplete) as exc:
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


def _within_limits(archive: Path, members: Iterable[tuple[str, int, bool]], limits: ExtractLimits) -> Iterable[str]:
    """Pass through the names of ``(name, uncompressed bytes, is a file)`` members; ArchiveError
    naming the member that crosses a limit, or the archive if it holds no file."""
    size = max(1, archive.stat().st_size)
    count = total = files = 0
    for name, nbytes, is_file in members:
        count, total, files = count + 1, total + nbytes, files + is_file
        where = f"{archive}: member {name!r}"
        if count > limits.max_members:
            raise ArchiveError(f"{where} is member number {count}, over data.extract.max_members = {limits.max_members}")
        if total > limits.max_bytes:
            raise ArchiveError(f"{where} brings the uncompressed size to {total} bytes, "
                               f"over data.extract.max_bytes = {limits.max_bytes}")
        if total > limits.max_ratio * size:
            raise ArchiveError(f"{where} brings the uncompressed size to {total} bytes, {total / size:.0f}x the "
                               f"{size}-byte archive, over data.extract.max_ratio = {limits.max_ratio:g}")
        yield name
    if not files:
        raise ArchiveError(f"{archive}: archive holds no files")


def _extract_tar(archive: Path, into: Path, limits: ExtractLimits) -> None:
    with tarfile.open(archive) as tf:
        # iterating reads one header at a time: a bomb is refused before its data is inflated
        for name in _within_limits(archive, ((m.name, m.size, m.isfile()) for m in tf), limits):
            _check_member_name(archive, name)
        try:
            tf.extractall(into, members=tf.getmembers(), filter="data")
        except tarfile.FilterError as exc:  # links escaping, absolute link targets, devices
            raise UnsafeArchiveError(f"{archive}: {exc}") from exc


def _extract_zip(archive: Path, into: Path, limits: ExtractLimits) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for name in _within_limits(archive, ((i.filename, i.file_size, not i.is_dir()) for i in infos), limits):
            _check_member_name(archive, name)
        for info in infos:
            if stat.S_ISLNK(info.external_attr >> 16):
                # zipfile would write the link target as a plain file; a link may also escape.
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link")
        zf.extractall(into, members=infos)


def extract(
    archive: str | os.PathLike[str],
    target: str | os.PathLike[str],
    progress: bool = True,
    limits: ExtractLimits = ExtractLimits(),
) -> Path:
    """Safely unpack a .tar(.gz/.bz2/.xz) or .zip ``archive`` into ``target`` (atomic swap).

    Raises:
        ArchiveError: not a tar or zip, corrupt, holding no file, or over ``limits``
            (:class:`UnsafeArchiveError`: a member would land outside ``target``).
    """
    archive, target = Path(archive), Path(target)
    with atomic_dir(target) as tmp:
        if progress:
            tqdm.write(f"extracting {archive.name} -> {target}")
        try:
            if zipfile.is_zipfile(archive):
                _extract_zip(archive, tmp, limits)
            elif tarfile.is_tarfile(archive):
                _extract_tar(archive, tmp, limits)
            else:
                raise ArchiveError(f"{archive}: not a tar or zip archive")
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
            raise ArchiveError(f"{archive}: corrupt archive ({exc})") from exc
    return target
