"""The results report of one evaluation, built from the files in its out dir alone.

    build_report(out_dir) -> str          Markdown (figures linked by relative path)
    write_report(out_dir) -> (md, html)   <out>/report.md and <out>/report.html

The HTML page has the same content with every figure embedded as a ``data:`` URI and
no external script or style, so it opens offline and can be mailed as one file.

Reads ``summary.json`` + ``context.json`` (:mod:`pipeline.evaluation.summary`),
``metrics.json``, ``bootstrap.json`` (intervals), ``per_class_ap.json``, ``gt_coco.json`` and ``figures/``.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.atomic import write_text
from pipeline.errors import PipelineError
from pipeline.evaluation.classes import mean_relative_area
from pipeline.evaluation.show import TITLES, load_metrics
from pipeline.evaluation.summary import CONTEXT, SUMMARY
from pipeline.evaluation.tables import Cell, markdown_table, sets_by_methods

#: Per-class AP is listed for this many of the smallest classes (the thesis' "ten smallest").
SMALLEST_CLASSES = 10

GLOSSARY: tuple[tuple[str, str], ...] = (
    ("map", "VOC mAP at IoU 0.5, all-point interpolation (VOC2010+ area under the precision envelope); "
            "'difficult' and crowd objects ignored; mean over the classes with ground truth in the split."),
    ("map_07", "The same VOC mAP@0.5 with the VOC2007 11-point interpolation (recall 0, 0.1, ..., 1)."),
    ("map_small / map_medium / map_large", "VOC mAP@0.5 on objects of one COCO size bucket (area < 32², "
            "32²-96², ≥ 96² px in the HR frame); ground truth outside the bucket and unmatched detections "
            "outside it are ignored, as pycocotools does for its area ranges."),
    ("coco_ap", "COCO AP@[.5:.95]: mean over IoU 0.50, 0.55, ..., 0.95 and the classes, 101-point "
            "interpolation, at most 100 detections per image (pycocotools / faster-coco-eval)."),
    ("ap50 / ap75", "COCO AP at IoU 0.5 / 0.75 (101-point, so ap50 differs slightly from VOC's map)."),
    ("ap_small / ap_medium / ap_large", "COCO AP@[.5:.95] per size bucket (< 32², 32²-96², ≥ 96² px); "
            "the area is the annotation's own (mask) area on COCO sources, else the box area, HR frame."),
    ("ar1 / ar10 / ar100", "COCO average recall over IoU 0.5:0.95 with at most 1 / 10 / 100 detections "
            "per image."),
    ("ar_small / ar_medium / ar_large", "COCO AR@100 per size bucket."),
    ("ap (per class)", "The class's VOC AP@0.5, all-point; ap_07 11-point; ap_small on its small objects."),
    ("<set>.nms / <set>.soft", "summary.json: the set's VOC mAP@0.5 (map) with the first hard-NMS / first "
            "Soft-NMS method of evaluate.methods."),
    ("srgan.nms", "summary.json: the SRGAN set's VOC mAP@0.5 with the first hard-NMS method (its only "
            "headline number)."),
    ("<set>.small", "summary.json: the set's COCO AP_small (ap_small) with the Soft-NMS method."),
    ("psnr_gain", "summary.json: SR PSNR minus bicubic PSNR in dB, Y channel (BT.601), border of `scale` px "
            "cropped, test split, against HR."),
    ("loss / img_s", "summary.json: the training loss (classification + box regression) averaged over the "
            "last logged window, and the training throughput (images per second) of that window."),
    ("psnr / ssim", "Peak signal-to-noise ratio (dB) and structural similarity (11x11 Gaussian window, "
            "sigma 1.5) of the SR or bicubic image against HR on the Y channel."),
    ("undefined (-)", "No ground truth in that bucket or split: the value is null/absent in the files "
            "and '-' here, never -1."),
    ("sets", "hr: the original test images; lr: HR downsampled x4; sr: LR restored by the SR network; "
            "srgan: LR restored by the SRGAN generator (perceptual + adversarial losses); "
            "bicubic: LR upscaled x4 bicubically. Every set is scored against the HR ground truth, "
            "detections mapped into the HR frame."),
)


class ReportError(PipelineError, ValueError):
    """An evaluation out dir lacks a file the report needs, or one is malformed; names the file."""


def _read(path: Path) -> Any:
    if not path.is_file():
        raise ReportError(f"{path}: not found (run the evaluate stage first)")
    try:
        return json.loads(path.read_text(encoding="utf8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from None


def _headline(summary: Mapping[str, Any], order: list[str]) -> str:
    sets = sorted((k for k, v in summary.items() if isinstance(v, dict)),
                  key=lambda s: (order.index(s) if s in order else len(order), s))
    rows: list[list[Cell]] = [[s, *(summary[s].get(k) for k in ("nms", "soft", "small"))] for s in sets]
    lines = [markdown_table(["set", "mAP@0.5 NMS", "mAP@0.5 Soft-NMS", "AP_small"], rows)] if rows else []
    extra = {"psnr_gain": "SR PSNR gain over bicubic (dB)", "loss": "training loss (last)",
             "img_s": "training throughput (img/s)"}
    rows = [[label, summary[k]] for k, label in extra.items() if k in summary]
    if rows:
        lines.append(markdown_table(["", "value"], rows, digits=3))
    return "\n\n".join(lines) or "_No headline numbers._"


def _interval(r: Mapping[str, Any] | None, signed: bool = False) -> str:
    """``0.4382 [0.3921, 0.4810]`` (``-`` where undefined)."""
    if r is None or r.get("value") is None:
        return "-"
    f = "{:+.4f}" if signed else "{:.4f}"
    bounds = "" if r.get("lo") is None else f" [{f.format(r['lo'])}, {f.format(r['hi'])}]"
    return f.format(r["value"]) + bounds


def _intervals(out: Path, order: list[str]) -> str:
    """mAP (all objects, small) per set × method with its bootstrap interval, and the within-run comparisons."""
    path = out / "bootstrap.json"
    if not path.is_file():
        return "_No intervals (no bootstrap.json)._"
    doc = _read(path)
    results = doc.get("results") or {}
    if not results:
        return "_Intervals are off (`evaluate.bootstrap.resamples: 0`)._"
    pairs = sorted({k.rsplit(".", 1)[0] for k in results},
                   key=lambda k: (order.index(k.split(".")[0]) if k.split(".")[0] in order else len(order), k))
    rows = [[*p.split(".", 1), _interval(results.get(f"{p}.map")), _interval(results.get(f"{p}.map_small"))]
            for p in pairs]
    level = int(round(100 * doc.get("level", 0.95)))
    text = [f"{level} % percentile intervals from {doc['resamples']} bootstrap resamples of the "
            f"{doc['n_images']} test images (the image is the unit; every set and method on the same resamples).",
            markdown_table(["set", "method", "mAP@0.5", "mAP@0.5 small"], rows)]
    effects = doc.get("effects") or []
    if effects:
        text += ["**Paired comparisons** (difference on the same resamples; an interval that excludes 0 is "
                 "resolved, whatever its sign):",
                 markdown_table(["comparison", "metric", "difference"],
                                [[e["effect"], e["metric"], _interval(e, signed=True)] for e in effects])]
    return "\n\n".join(text)


def _per_class(out: Path, context: Mapping[str, Any], sets: list[str]) -> str:
    gt = _read(out / "gt_coco.json")
    per_class = _read(out / "per_class_ap.json")
    method = context.get("headline_methods", {}).get("soft") or next(iter(context.get("methods", {})), None)
    areas = mean_relative_area(gt)
    smallest = sorted(areas, key=lambda c: (areas[c], c))[:SMALLEST_CLASSES]
    rows: list[list[Cell]] = []
    for c in smallest:
        npos = per_class.get(sets[0], {}).get(method, {}).get(c, {}).get("npos") if sets else None
        rows.append([c, round(areas[c], 4), npos,
                     *(per_class.get(s, {}).get(method, {}).get(c, {}).get("ap") for s in sets)])
    head = f"VOC AP@0.5 with `{method}`, classes by mean relative box area (box / image), smallest first."
    return head + "\n\n" + markdown_table(["class", "rel. area", "objects", *sets], rows)


def _sr_quality(sr: Mapping[str, Any] | None) -> str:
    if not sr:
        return "_No SR quality file was given to the evaluation._"
    rows: list[list[Cell]] = [[name, sr[name].get("psnr"), sr[name].get("ssim")]
                              for name in ("sr", "srgan", "bicubic") if isinstance(sr.get(name), dict)]
    table = markdown_table(["set", "PSNR (dB)", "SSIM"], rows)
    gains = [f"{label} - bicubic: {sr[key]:+.3f} dB" for label, key in (("SR", "psnr_gain_db"),
                                                                         ("SRGAN", "srgan_psnr_gain_db"))
             if isinstance(sr.get(key), (int, float))]
    note = "\n\n" + "; ".join(gains) if gains else ""
    return f"{table}{note} ({sr.get('images', '?')} {sr.get('split', '')} images)."


def _training(train: Mapping[str, Any] | None) -> str:
    if not train:
        return "_No training metrics file was given to the evaluation._"
    values = train.get("train", {})
    rows: list[list[Cell]] = [["steps", train.get("step")]]
    rows += [[k, values.get(k)] for k in ("loss", "cls", "box", "lr", "img_per_s") if k in values]
    return "Last logged window of the training run (dvclive `metrics.json`).\n\n" + markdown_table(
        ["", "value"], rows, digits=4)


def _figures(out: Path, context: Mapping[str, Any], sets: list[str]) -> str:
    method = context.get("headline_methods", {}).get("soft") or next(iter(context.get("methods", {})), "")
    figs = out / "figures"
    groups = [
        (f"PR curves ({method})", [figs / f"pr_{s}_{method}.png" for s in sets]),
        ("Detections (white: ground truth)", sorted(figs.glob("detections_*.png"))),
        ("Other figures", [out / f for f in context.get("figures", [])]),
    ]
    parts = []
    for title, paths in groups:
        present = [p for p in paths if p.is_file()]
        if present:
            parts.append(f"### {title}\n\n" + "\n\n".join(
                f"![{p.stem}]({Path(os.path.relpath(p, out)).as_posix()})" for p in present))
    return "\n\n".join(parts) or "_No figures._"


def build_report(out_dir: str | os.PathLike[str]) -> str:
    """The Markdown report of the evaluation in ``out_dir`` (see module docstring)."""
    out = Path(out_dir)
    summary, context = _read(out / SUMMARY), _read(out / CONTEXT)
    metrics = load_metrics(out / "metrics.json")
    order = list(context.get("sets", {}))
    sets = order or list(dict.fromkeys(k.split(".")[0] for k in metrics))

    def matrix(metric: str) -> str:
        return f"**{metric}**: {TITLES.get(metric, metric)}\n\n" + markdown_table(
            *sets_by_methods(metrics, metric, order))

    ref = context.get("reference", "?")
    sections = [
        "# Evaluation results",
        f"Checkpoint `{context.get('checkpoint', '?')}`, split `{context.get('split', '?')}`; every set is "
        f"scored against the ground truth of `{ref}` in its pixel frame. Undefined values are `-`.",
        "## Headline (summary.json)", _headline(summary, order),
        "## Sets × methods", matrix("map"), matrix("coco_ap"),
        "## Intervals", _intervals(out, order),
        "## Small objects", matrix("map_small"), matrix("ap_small"),
        f"## Per-class AP, the {SMALLEST_CLASSES} smallest classes", _per_class(out, context, sets),
        "## Super-resolution quality", _sr_quality(context.get("sr_quality")),
        "## Training", _training(context.get("train")),
        "## Figures", _figures(out, context, sets),
        "## Glossary", "\n".join(f"- {' / '.join(f'`{n}`' for n in name.split(' / '))}: {text}"
                                  for name, text in GLOSSARY),
        "The full matrix: `python -m pipeline.evaluation.show " + f"{out.as_posix()}/metrics.json`.",
    ]
    return "\n\n".join(sections) + "\n"


def _data_uri(path: Path) -> str | None:
    if not path.is_file():
        return None
    kind = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}.get(path.suffix.lower())
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}" if kind else None


def to_html(markdown_text: str, base: str | os.PathLike[str], title: str = "Evaluation results") -> str:
    """One self-contained page: Markdown rendered, local images under ``base`` embedded as data URIs."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables", "fenced_code"])

    def embed(m: re.Match[str]) -> str:
        uri = _data_uri(Path(base) / html.unescape(m.group(1)))
        return f'src="{uri}"' if uri else m.group(0)

    body = re.sub(r'src="([^":]+)"', embed, body)
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em;line-height:1.4}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em}"
             "img{max-width:100%}code{background:#f4f4f4}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head>\n<body>\n{body}\n</body></html>\n")


def write_report(out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (atomically) into ``out_dir``; returns both paths."""
    out = Path(out_dir)
    text = build_report(out)
    write_text(out / "report.md", text)
    write_text(out / "report.html", to_html(text, out))
    return out / "report.md", out / "report.html"
