"""Data sources: materialise one under ``data/raw`` and describe it in ``source.json``.

``source.json`` tells ingest where everything is (paths relative to the raw folder
unless absolute)::

    {"source": "voc2007", "format": "voc", "classes": [...20 names...] | null,
     "splits": {"train": [{"root": "...VOC2007", "ids": "ImageSets/Main/trainval.txt"}],
                "test":  [...]},                                   # format voc
     # format coco: {"images": "<dir>", "annotations": "<instances json>"} per entry
     "archives": {"<file name>": "<checksum>"},
     "fingerprint": {...}}          # the source stage's content fingerprint (pipeline.data.fingerprint)

Downloads use the pinned checksums below; VOC md5s are torchvision's
(torchvision 0.29.1 ``datasets/voc.py``), COCO sha256s are torchvision's
(pytorch/vision ``torchvision/prototype/datasets/_builtin/coco.py`` @ 05caddc).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.atomic import write_json
from pipeline.config import require
from pipeline.data.download import ExtractLimits, download, extract, parse_checksum
from pipeline.data.embedded import EMBEDDED_CLASSES, EmbeddedConfig, generate_voc
from pipeline.data.voc import VOC_CLASSES
from pipeline.errors import PipelineError

SOURCE_FILE = "source.json"
SourceName = Literal["embedded", "voc2007", "voc2012", "voc0712", "coco2017", "local"]


@dataclass(frozen=True)
class Archive:
    """A downloadable archive: ``<base url>/<path>`` with a pinned checksum."""

    host: Literal["voc", "coco"]
    path: str
    checksum: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        return self.name.split(".")[0]


ARCHIVES: dict[str, Archive] = {
    a.name: a
    for a in (
        Archive("voc", "voc2007/VOCtrainval_06-Nov-2007.tar", "md5:c52e279531787c972589f7e41ab4ae64"),
        Archive("voc", "voc2007/VOCtest_06-Nov-2007.tar", "md5:b6e924de25625d8de591ea690078ad9f"),
        Archive("voc", "voc2012/VOCtrainval_11-May-2012.tar", "md5:6cd6e144f989b92b3379bac3b3de84fd"),
        Archive("coco", "zips/train2017.zip",
                "sha256:69a8bb58ea5f8f99d24875f21416de2e9ded3178e903f1f7603e283b9e06d929"),
        Archive("coco", "zips/val2017.zip",
                "sha256:4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05"),
        Archive("coco", "annotations/annotations_trainval2017.zip",
                "sha256:113a836d90195ee1f884e704da6304dfaaecff1f023f49b6ca93c4aaae470268"),
    )
}

# Per downloadable source and split: (archive, folder inside it, split list) for VOC,
# (images archive, images folder, annotations archive, annotations file) for COCO.
_VOC_LAYOUT: dict[str, dict[str, list[tuple[str, str, str]]]] = {
    "voc2007": {
        "train": [("VOCtrainval_06-Nov-2007.tar", "VOCdevkit/VOC2007", "trainval")],
        "test": [("VOCtest_06-Nov-2007.tar", "VOCdevkit/VOC2007", "test")],
    },
    # VOC2012 test annotations are not public: its val split serves as test.
    "voc2012": {
        "train": [("VOCtrainval_11-May-2012.tar", "VOCdevkit/VOC2012", "train")],
        "test": [("VOCtrainval_11-May-2012.tar", "VOCdevkit/VOC2012", "val")],
    },
    "voc0712": {
        "train": [
            ("VOCtrainval_06-Nov-2007.tar", "VOCdevkit/VOC2007", "trainval"),
            ("VOCtrainval_11-May-2012.tar", "VOCdevkit/VOC2012", "trainval"),
        ],
        "test": [("VOCtest_06-Nov-2007.tar", "VOCdevkit/VOC2007", "test")],
    },
}
_COCO_LAYOUT: dict[str, dict[str, list[tuple[str, str, str, str]]]] = {
    "coco2017": {
        split: [(f"{name}.zip", name, "annotations_trainval2017.zip", f"annotations/instances_{name}.json")]
        for split, name in (("train", "train2017"), ("test", "val2017"))
    }
}


@dataclass(frozen=True)
class DataConfig:
    """Params section ``data``.

    Attributes:
        source: which dataset (see README).
        embedded: size of the generated dataset (source ``embedded``).
        download_dir: archive cache, outside DVC outputs.
        voc_url, coco_url: URL bases of the archives (override for a mirror or tests).
            VOC's original host.robots.ox.ac.uk now redirects to thor.robots.ox.ac.uk,
            which torchvision 0.29 uses.
        checksums: ``{archive file name: "md5:<hex>" | "sha256:<hex>"}`` overriding the pins.
        retries: extra download attempts after transient errors.
        backoff: seconds before the first retry (doubling each time).
        extract: limits on what one archive may unpack (:class:`ExtractLimits`).
        local_path: an existing VOCdevkit, VOC<year> or COCO folder (source ``local``).
        local_format: ``voc`` or ``coco``.
        local_train, local_test: entries forming each split.  VOC: ``"<list>"`` (in a
            VOC<year> folder) or ``"<VOC year dir>/<list>"`` (in a VOCdevkit), naming
            ``ImageSets/Main/<list>.txt``.  COCO: ``"<name>"`` (images ``<name>/``,
            ``annotations/instances_<name>.json``) or ``"<images dir>:<json file>"``.
            Empty: VOC ``trainval``/``test``, COCO ``train2017``/``val2017``.
    """

    source: SourceName = "embedded"
    embedded: EmbeddedConfig = EmbeddedConfig()
    download_dir: str = "data/downloads"
    voc_url: str = "https://thor.robots.ox.ac.uk/pascal/VOC"
    coco_url: str = "http://images.cocodataset.org"
    checksums: dict[str, str] = field(default_factory=dict)
    retries: int = 5
    backoff: float = 2.0
    extract: ExtractLimits = ExtractLimits()
    local_path: str = ""
    local_format: Literal["voc", "coco"] = "voc"
    local_train: tuple[str, ...] = ()
    local_test: tuple[str, ...] = ()

    def validate(self, prefix: str) -> None:
        for name, value in self.checksums.items():
            require(name in ARCHIVES, f"{prefix}.checksums.{name}", f"unknown archive (known: {sorted(ARCHIVES)})")
            try:
                parse_checksum(str(value))
            except ValueError as exc:
                require(False, f"{prefix}.checksums.{name}", str(exc))
        require(self.retries >= 0, f"{prefix}.retries", "must be >= 0")
        require(self.backoff >= 0, f"{prefix}.backoff", "must be >= 0")
        if self.source == "local":
            require(bool(self.local_path), f"{prefix}.local_path", "required for source 'local'")


class SourceError(PipelineError, ValueError):
    """A source cannot be materialised (missing folder, list or annotation file)."""


def _rel(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def _fetch_archives(cfg: DataConfig, names: list[str], out: Path, progress: bool) -> dict[str, str]:
    """Download (cached) and extract each archive to ``out/<stem>``; returns name -> checksum."""
    pins = {}
    for name in dict.fromkeys(names):
        arc = ARCHIVES[name]
        checksum = cfg.checksums.get(name, arc.checksum)
        base = (cfg.voc_url if arc.host == "voc" else cfg.coco_url).rstrip("/")
        path = download(f"{base}/{arc.path}", Path(cfg.download_dir) / name, checksum,
                        retries=cfg.retries, backoff=cfg.backoff, progress=progress)
        target, marker = out / arc.stem, out / arc.stem / ".archive-checksum"
        # Extraction is atomic, and the marker is written after it: a matching marker
        # means this exact archive is already fully extracted (re-runs skip the work).
        if not (marker.is_file() and marker.read_text() == checksum):
            extract(path, target, progress=progress, limits=cfg.extract)
            marker.write_text(checksum)
        pins[name] = checksum
    return pins


def _local_voc_entries(cfg: DataConfig, split: str) -> list[dict[str, str]]:
    base = Path(cfg.local_path)
    entries = cfg.local_train if split == "train" else cfg.local_test
    if not entries and not (cfg.local_train or cfg.local_test):
        if (base / "ImageSets").is_dir():
            entries = ("trainval",) if split == "train" else ("test",)
        else:
            years = sorted(p.name for p in base.glob("VOC*") if (p / "ImageSets").is_dir())
            if len(years) != 1:
                raise SourceError(f"data.local_train: {base} holds {years or 'no VOC<year> folders'}; "
                                  "name entries like 'VOC2007/trainval'")
            entries = (f"{years[0]}/trainval",) if split == "train" else (f"{years[0]}/test",)
    out = []
    for e in entries:
        sub, _, lst = e.rpartition("/")
        root = base / sub if sub else base
        ids = root / "ImageSets" / "Main" / f"{lst}.txt"
        if not ids.is_file():
            raise SourceError(f"data.local_{split}: split list {ids} not found (entry {e!r})")
        out.append({"root": str(root.resolve()), "ids": f"ImageSets/Main/{lst}.txt"})
    return out


def _local_coco_entries(cfg: DataConfig, split: str) -> list[dict[str, str]]:
    base = Path(cfg.local_path)
    entries = cfg.local_train if split == "train" else cfg.local_test
    if not entries and not (cfg.local_train or cfg.local_test):
        entries = ("train2017",) if split == "train" else ("val2017",)
    out = []
    for e in entries:
        img, sep, ann = e.partition(":")
        images = base / img
        annotations = base / ann if sep else base / "annotations" / f"instances_{img}.json"
        for p, what in ((images, "images folder"), (annotations, "annotation file")):
            if not p.exists():
                raise SourceError(f"data.local_{split}: {what} {p} not found (entry {e!r})")
        out.append({"images": str(images.resolve()), "annotations": str(annotations.resolve())})
    return out


def describe(cfg: DataConfig, seed: int, out: Path, progress: bool = True) -> dict[str, Any]:
    """Materialise the configured source under ``out``; return its description."""
    desc: dict[str, Any] = {"source": cfg.source}
    if cfg.source == "embedded":
        root = generate_voc(out, seed, cfg.embedded, progress=progress)
        desc.update(format="voc", classes=list(EMBEDDED_CLASSES), splits={
            s: [{"root": _rel(root, out), "ids": f"ImageSets/Main/{s}.txt"}] for s in ("train", "test")
        })
    elif cfg.source in _VOC_LAYOUT:
        layout = _VOC_LAYOUT[cfg.source]
        names = [a for entries in layout.values() for a, _, _ in entries]
        desc["archives"] = _fetch_archives(cfg, names, out, progress)
        desc.update(format="voc", classes=list(VOC_CLASSES), splits={
            s: [{"root": f"{ARCHIVES[a].stem}/{sub}", "ids": f"ImageSets/Main/{lst}.txt"} for a, sub, lst in entries]
            for s, entries in layout.items()
        })
    elif cfg.source in _COCO_LAYOUT:
        layout = _COCO_LAYOUT[cfg.source]
        names = [n for entries in layout.values() for a, _, b, _ in entries for n in (a, b)]
        desc["archives"] = _fetch_archives(cfg, names, out, progress)
        desc.update(format="coco", classes=None, splits={
            s: [{"images": f"{ARCHIVES[a].stem}/{img}", "annotations": f"{ARCHIVES[b].stem}/{ann}"}
                for a, img, b, ann in entries]
            for s, entries in layout.items()
        })
    else:  # local: record paths, copy nothing
        desc.update(format=cfg.local_format, classes=list(VOC_CLASSES) if cfg.local_format == "voc" else None,
                    splits=local_entries(cfg))
    return desc


def local_entries(cfg: DataConfig) -> dict[str, list[dict[str, str]]]:
    """The split entries of a ``local`` source (absolute paths), checked to exist.

    VOC entries are ``{"root": <VOC year folder>, "ids": <split list, relative>}``,
    COCO entries ``{"images": <folder>, "annotations": <json file>}``.
    """
    if not Path(cfg.local_path).is_dir():
        raise SourceError(f"data.local_path: {cfg.local_path!r} is not a directory")
    make = _local_voc_entries if cfg.local_format == "voc" else _local_coco_entries
    return {s: make(cfg, s) for s in ("train", "test")}


def fetch(cfg: DataConfig, seed: int, out: str | os.PathLike[str], progress: bool = True,
          fingerprint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Materialise the source under ``out`` and write ``out/source.json``.

    ``fingerprint`` (the ``source`` stage's, :mod:`pipeline.data.fingerprint`) is recorded
    in ``source.json``, so a change in a local source's content changes ``data/raw`` and
    DVC re-runs everything below fetch.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    desc = describe(cfg, seed, out, progress)
    if fingerprint is not None:
        if fingerprint.get("source") != cfg.source:
            raise SourceError(f"source fingerprint is of source {fingerprint.get('source')!r}, params say "
                              f"data.source {cfg.source!r}: run the source stage first (dvc repro)")
        desc["fingerprint"] = fingerprint
    write_json(out / SOURCE_FILE, desc)
    return desc
