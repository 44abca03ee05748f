"""Run a trained detector on any images: ``python -m pipeline.predict`` (console script ``sod-predict``).

    python -m pipeline.predict --checkpoint data/models/detector/model.pt --source photos/ --out runs/predict

The checkpoint is self-describing (variant, model config, class names), so no params
file is needed.  For every readable image the output folder gets an annotated picture
(``<name>.jpg``, :func:`pipeline.drawing.draw_detections`) and, with ``--per-image``,
``labels/<name>.json``; ``detections.json`` holds the whole run in COCO format:
``images`` (id, file_name, width, height, picture), ``categories`` (the checkpoint's
class names, ids 1..C) and ``annotations`` (detections with ``score``: a results list
that ``pycocotools``' ``COCO.loadRes`` accepts on a COCO object holding these images).

Inference and post-processing are the evaluation's (:func:`pipeline.evaluation.infer.detect_images`);
``--slice`` detects large images tile by tile (:mod:`pipeline.slicing`); ``--sr``
super-resolves each input first (the SR stage's tiled inference, or ``bicubic``) and
maps the boxes back to the input's pixels.  An unreadable image is one line on stderr,
skipped and listed at the end; the exit code is 0 unless ``--strict`` (then 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline.atomic import write_json
from pipeline.cli import run_cli
from pipeline.config import ConfigError, require
from pipeline.data.images import ImageError, read_image, write_image
from pipeline.errors import PipelineError
from pipeline.postprocess import Detections, PostprocessConfig
from pipeline.slicing import SliceConfig

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: ``--method`` name -> post-processing method (the evaluation's method names).
METHODS = {"nms": "nms", "softnms": "soft_linear", "softnms_gauss": "soft_gaussian"}
RESULTS_NAME = "detections.json"


@dataclass
class _Item:
    """One readable input: where it came from, its size, the picture the detector sees."""

    index: int
    path: Path
    name: str  # output stem, unique in the run
    width: int
    height: int
    image: np.ndarray  # detector input (super-resolved with --sr)


def collect_sources(sources: Sequence[str]) -> list[Path]:
    """Image files named by ``sources`` (files, folders -> their images, or glob patterns), deduplicated.

    A folder contributes its files with an image suffix (not recursive); a named file or a
    glob match is taken whatever its suffix, so a non-image fails to decode and is listed.
    """
    out: dict[Path, Path] = {}
    for src in sources:
        p = Path(src)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise PipelineError(f"--source {src}: folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        elif p.is_file():
            found = [p]
        elif not glob.has_magic(src):
            raise PipelineError(f"--source {src}: no such file or folder")
        else:
            found = sorted(Path(m) for m in glob.glob(src, recursive=True) if Path(m).is_file())
            if not found:
                raise PipelineError(f"--source {src}: the pattern matches no files")
        for f in found:
            out.setdefault(f.resolve(), f)
    return list(out.values())


def _stem(path: Path, used: set[str]) -> str:
    """A safe, unique output name from the file's stem (letters, digits, ``._-``; never hidden)."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", path.stem).lstrip(".") or "image"
    name, n = base, 1
    while name.lower() in used:
        n += 1
        name = f"{base}_{n}"
    used.add(name.lower())
    return name


def load_predictor(checkpoint: str | os.PathLike[str]) -> tuple[torch.nn.Module, list[str]]:
    """The checkpoint's model (on CPU, eval) and its class names; clear errors for old or foreign files."""
    from pipeline.detector.checkpoint import CheckpointError, load_detector

    if not Path(checkpoint).is_file():
        raise CheckpointError(f"checkpoint not found: {checkpoint}")
    model, extra = load_detector(checkpoint)
    classes = extra.get("classes")
    if not classes or len(classes) != model.num_classes:
        raise CheckpointError(f"{checkpoint}: the checkpoint records no class names for its {model.num_classes} "
                              f"classes (extra.classes = {classes!r}); predictions could not be labelled")
    return model.eval(), [str(c) for c in classes]


def make_super_resolver(spec: str, scale: int, device: str) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """``bicubic`` or an SR generator file -> (function LR image -> SR image, scale)."""
    from pipeline.sr.infer import bicubic_upscale, super_resolve

    if spec == "bicubic":
        return (lambda img: bicubic_upscale(img, (scale * img.shape[1], scale * img.shape[0]))), scale
    from pipeline.sr.weights import load_generator

    if not Path(spec).is_file():
        raise PipelineError(f"--sr {spec}: not 'bicubic' and no such generator file")
    gen = load_generator(spec)
    dev = None if device == "auto" else device
    return (lambda img: next(super_resolve(gen, [img], device=dev))), int(gen.upscale)  # (H, W, 3) uint8


def _read_inputs(paths: Sequence[Path], sr: Callable[[np.ndarray], np.ndarray] | None,
                 skipped: list[tuple[Path, str]]) -> Iterator[tuple[_Item, np.ndarray]]:
    """Decode (and super-resolve) each path; an unreadable one is reported on stderr and recorded."""
    used: set[str] = set()
    for i, path in enumerate(paths):
        try:
            img = read_image(path)
        except ImageError as exc:
            skipped.append((path, str(exc)))
            tqdm.write(f"skipped: {exc}", file=sys.stderr)
            continue
        seen = sr(img) if sr is not None else img
        item = _Item(i, path, _stem(path, used), img.shape[1], img.shape[0], seen)
        yield item, seen


def _draw(item: _Item, det: Detections, classes: Sequence[str]) -> np.ndarray:
    from pipeline.drawing import draw_detections

    return draw_detections(item.image, det.boxes.numpy(), det.labels.numpy(), det.scores.numpy(), classes)


def _to_input_frame(det: Detections, item: _Item) -> Detections:
    """Boxes from the detector's picture (SR: larger) into the input file's pixels."""
    h, w = item.image.shape[:2]
    if (w, h) == (item.width, item.height):
        return det
    scale = torch.tensor([item.width / w, item.height / h] * 2, dtype=det.boxes.dtype)
    return Detections(det.boxes * scale, det.scores, det.labels)


def _per_image_json(item: _Item, det: Detections, classes: Sequence[str]) -> dict:
    return {
        "file_name": str(item.path),
        "width": item.width,
        "height": item.height,
        "detections": [
            {"box_xyxy": [round(float(v), 3) for v in b], "score": round(float(s), 6), "label": int(lab),
             "class": classes[int(lab)]}
            for b, s, lab in zip(det.boxes.tolist(), det.scores.tolist(), det.labels.tolist(), strict=True)
        ],
    }


def predict(
    checkpoint: str | os.PathLike[str],
    sources: Sequence[str],
    out: str | os.PathLike[str],
    post_cfg: PostprocessConfig,
    score: float = 0.3,
    batch_size: int = 8,
    device: str = "auto",
    slice_cfg: SliceConfig | None = None,
    sr: str | None = None,
    sr_scale: int = 4,
    per_image: bool = False,
    pictures: bool = True,
    progress: bool = True,
) -> dict:
    """Detect in every image of ``sources``, write pictures + ``detections.json`` under ``out``.

    Returns:
        A summary: ``images`` (done), ``detections``, ``skipped`` ([{file, error}]), ``results`` (path).
    """
    from pipeline.evaluation.infer import detect_images
    from pipeline.evaluation.results import detections_to_results

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PipelineError(f"--out {out}: exists and is not a folder")
    paths = collect_sources(sources)
    model, classes = load_predictor(checkpoint)
    resolver = make_super_resolver(sr, sr_scale, device)[0] if sr else None
    out.mkdir(parents=True, exist_ok=True)
    if per_image:
        (out / "labels").mkdir(exist_ok=True)
    skipped: list[tuple[Path, str]] = []
    images, found = [], {}
    stream = detect_images(model, _read_inputs(paths, resolver, skipped), {"_": post_cfg.with_score_floor(score)},
                           batch_size, device, slice_cfg)
    for item, dets in tqdm(stream, total=len(paths), desc="predict", unit="img", disable=not progress):
        det = dets["_"]
        keep = det.scores >= score
        det = Detections(det.boxes[keep], det.scores[keep], det.labels[keep])
        picture = f"{item.name}.jpg" if pictures else None
        if picture:
            write_image(out / picture, _draw(item, det, classes))
        det = _to_input_frame(det, item)
        if per_image:
            write_json(out / "labels" / f"{item.name}.json", _per_image_json(item, det, classes))
        images.append({"id": len(images) + 1, "file_name": str(item.path), "width": item.width,
                       "height": item.height, "picture": picture})
        found[item.name] = det
        item.image = np.empty((0, 0, 3), np.uint8)  # free the picture; the record stays
    ids = {name: i + 1 for i, name in enumerate(found)}
    anns = detections_to_results(found, ids)
    for i, a in enumerate(anns):
        w, h = a["bbox"][2], a["bbox"][3]
        a.update(id=i + 1, area=round(w * h, 3), iscrowd=0)
    results = out / RESULTS_NAME
    write_json(results, {
        "info": {"checkpoint": str(checkpoint), "method": post_cfg.method, "score": score,
                 "slice": dataclasses.asdict(slice_cfg) if slice_cfg else None, "sr": sr},
        "images": images,
        "categories": [{"id": i + 1, "name": c} for i, c in enumerate(classes)],
        "annotations": anns,
    })
    return {"images": len(images), "detections": len(anns), "results": str(results),
            "skipped": [{"file": str(p), "error": e} for p, e in skipped]}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="detector checkpoint (data/models/detector/model.pt)")
    p.add_argument("--source", required=True, nargs="+", help="image file(s), folder(s) or glob pattern(s)")
    p.add_argument("--out", required=True, help="output folder (pictures, detections.json, labels/)")
    p.add_argument("--method", choices=sorted(METHODS), default="softnms", help="post-processing (default softnms)")
    p.add_argument("--score", type=float, default=0.3, help="keep detections scoring >= this (default 0.3)")
    p.add_argument("--iou", type=float, default=0.45, help="NMS / linear Soft-NMS IoU threshold (default 0.45)")
    p.add_argument("--max-det", type=int, default=300, help="detections kept per image (default 300)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--batch-size", type=int, default=8, help="inputs (images or tiles) per forward pass")
    p.add_argument("--slice", type=int, default=None, metavar="SIZE", help="detect in SIZE x SIZE tiles")
    p.add_argument("--overlap", type=float, default=0.2, help="tile overlap fraction (default 0.2)")
    p.add_argument("--merge", choices=("nms", "softnms", "greedy"), default="nms",
                   help="merge across tiles: nms (default) | softnms | greedy (SAHI greedy NMM)")
    p.add_argument("--full-image", action="store_true", help="with --slice: also detect on the whole image")
    p.add_argument("--sr", default=None, metavar="GENERATOR", help="super-resolve first: an SR .pth or 'bicubic'")
    p.add_argument("--sr-scale", type=int, default=4, help="upscaling factor of --sr bicubic (default 4)")
    p.add_argument("--per-image", action="store_true", help="also write labels/<name>.json per image")
    p.add_argument("--no-pictures", action="store_true", help="skip the annotated pictures")
    p.add_argument("--strict", action="store_true", help="exit 1 when any image was unreadable")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _configs(a: argparse.Namespace) -> tuple[PostprocessConfig, SliceConfig | None]:
    """Validated post-processing and slicing settings; a bad flag is a ConfigError naming it."""
    from pipeline.evaluation.config import _check_device

    require(0.0 <= a.score <= 1.0, "--score", f"must be in [0, 1], got {a.score}")
    require(a.batch_size >= 1, "--batch-size", f"must be >= 1, got {a.batch_size}")
    require(a.sr_scale >= 1, "--sr-scale", f"must be >= 1, got {a.sr_scale}")
    _check_device(a.device, "--device")
    post = PostprocessConfig(method=METHODS[a.method], iou_threshold=a.iou, top_k=a.max_det)
    post.validate("--method")
    if a.slice is None:
        require(not a.full_image, "--full-image", "needs --slice SIZE")
        return post, None
    sl = SliceConfig(size=a.slice, overlap=a.overlap, merge=a.merge, full_image=a.full_image)
    try:
        sl.validate("--slice")
    except ConfigError as exc:
        msg = str(exc).replace("--slice.overlap", "--overlap").replace("--slice.size", "--slice")
        raise ConfigError(msg) from None
    return post, sl


def main(argv: Sequence[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    post, sl = _configs(a)
    summary = predict(a.checkpoint, a.source, a.out, post, a.score, a.batch_size, a.device, sl, a.sr, a.sr_scale,
                      a.per_image, not a.no_pictures, not a.quiet)
    print(f"predict: {summary['images']} image(s), {summary['detections']} detection(s) -> {summary['results']}")
    if summary["skipped"]:
        print(f"skipped {len(summary['skipped'])} unreadable image(s):", file=sys.stderr)
        for s in summary["skipped"]:
            print(f"  {s['file']}", file=sys.stderr)
    return 1 if a.strict and summary["skipped"] else 0


def cli() -> None:
    """Console-script entry point (``sod-predict``)."""
    run_cli(main)


if __name__ == "__main__":
    cli()
