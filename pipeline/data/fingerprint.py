"""Content fingerprint of the data source: what the DVC ``source`` stage writes.

A ``local`` source is read in place from ``data.local_path``, outside DVC's view, so
DVC alone cannot see its annotation files or images change.  The ``source`` stage
(``always_changed`` in dvc.yaml, so it runs on every ``dvc repro``) writes this
fingerprint; ``fetch`` depends on the file and copies it into ``source.json``.  When
the content is unchanged the file is byte-identical and DVC skips fetch and every
stage below; when an annotation file or image is edited, added or removed, the file
changes and everything from fetch down re-runs.

Per-file digests are memoised on (path, size, mtime_ns, inode) in a state file
(:class:`pipeline.hashing.HashState`, as DVC's own state database), so a re-run over
COCO's 118k train images only stats them; a file whose stat changed is re-read, and a
touched but identical file leaves the fingerprint as it was.

Downloaded sources are pinned by archive checksums in params and the embedded one is
generated from params: DVC's params dependency already covers them, so their
fingerprint names the source only and never changes by itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.atomic import write_json
from pipeline.data.sources import DataConfig, SourceError, local_entries
from pipeline.hashing import HashState


def watched_paths(cfg: DataConfig) -> list[Path]:
    """What a local source's splits read: VOC year folders; COCO image folders and annotation files."""
    paths = []
    for entries in local_entries(cfg).values():
        for e in entries:
            paths += [e["root"]] if "root" in e else [e["images"], e["annotations"]]
    return [Path(p) for p in dict.fromkeys(paths)]


def _files(folder: Path, rel: str = "", ancestors: frozenset[str] = frozenset()
           ) -> Iterator[tuple[str, Path, bool]]:
    """(relative path, path, is a regular file) of every file below ``folder`` in sorted
    order, links followed (the directory listing's types: no extra stat per file)."""
    real = os.path.realpath(folder)
    if real in ancestors:
        raise SourceError(f"data.local_path: {folder} is a link back to its own parent folder {real} (a cycle)")
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise SourceError(f"data.local_path: cannot list {folder}: {exc.strerror or exc}") from exc
    for e in entries:
        if e.is_dir():
            yield from _files(Path(e.path), f"{rel}{e.name}/", ancestors | {real})
        else:
            yield f"{rel}{e.name}", Path(e.path), e.is_file()


def _file_md5(path: Path, state: HashState, regular: bool) -> str:
    try:
        if not regular:
            why = "a broken link" if path.is_symlink() and not path.exists() else \
                "not a regular file (a pipe, socket or device)"  # a FIFO would block the read forever
            raise SourceError(f"data.local_path: cannot read {path}: {why}")
        return state.md5(path)
    except OSError as exc:
        raise SourceError(f"data.local_path: cannot read {path}: {exc.strerror or exc}") from exc


def tree_md5(path: Path, state: HashState) -> str:
    """md5 of a file's bytes, or over (relative path, md5) of every file below a folder."""
    if not path.is_dir():
        return _file_md5(path, state, path.is_file())
    h = hashlib.md5()
    for rel, p, regular in _files(path):
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0" + _file_md5(p, state, regular).encode() + b"\n")
    return h.hexdigest()


def source_fingerprint(cfg: DataConfig, state: HashState | None = None) -> dict[str, Any]:
    """``{"source", "format", "content": {path: md5}}`` for a local source; ``{"source"}`` otherwise."""
    if cfg.source != "local":
        return {"source": cfg.source}
    state = state or HashState()
    content = {str(p): tree_md5(p, state) for p in watched_paths(cfg)}
    return {"source": cfg.source, "format": cfg.local_format, "content": content}


def write_fingerprint(cfg: DataConfig, out: str | os.PathLike[str],
                      state_file: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Write :func:`source_fingerprint` to ``out`` (atomically); memo digests in ``state_file``."""
    state = HashState(state_file)
    fp = source_fingerprint(cfg, state)
    write_json(out, fp)
    state.save()
    return fp


def read_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The fingerprint JSON at ``path``; a missing or malformed one is a SourceError naming it."""
    path = Path(path)
    try:
        fp = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"{path}: unreadable source fingerprint ({exc}); run the source stage (dvc repro)") from exc
    if not isinstance(fp, dict):
        raise SourceError(f"{path}: a source fingerprint must be a JSON object; run the source stage (dvc repro)")
    return fp
