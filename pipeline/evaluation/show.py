"""Print the full evaluation matrix readably (``dvc metrics show`` shows only the headline summary).

    python -m pipeline.evaluation.show                      # data/eval/metrics.json, every metric
    python -m pipeline.evaluation.show PATH --metric map --metric ap_small

One table per metric: a row per test set, a column per post-processing method; ``-``
marks an undefined value (no ground truth in that size bucket).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.cli import run_cli
from pipeline.errors import PipelineError
from pipeline.evaluation.tables import nest, sets_by_methods, text_table

#: What each metric of the matrix is (the report's glossary has the conventions).
TITLES = {
    "map": "VOC mAP@0.5, all-point",
    "map_07": "VOC mAP@0.5, 11-point (VOC2007)",
    "map_small": "VOC mAP@0.5, small objects (< 32² px, HR frame)",
    "map_medium": "VOC mAP@0.5, medium objects",
    "map_large": "VOC mAP@0.5, large objects",
    "coco_ap": "COCO AP@[.5:.95]",
    "ap50": "COCO AP@0.5 (101-point)",
    "ap75": "COCO AP@0.75",
    "ap_small": "COCO AP_small",
    "ap_medium": "COCO AP_medium",
    "ap_large": "COCO AP_large",
    "ar1": "COCO AR, 1 detection per image",
    "ar10": "COCO AR, 10 detections",
    "ar100": "COCO AR, 100 detections",
    "ar_small": "COCO AR_small",
    "ar_medium": "COCO AR_medium",
    "ar_large": "COCO AR_large",
}


class MetricsFileError(PipelineError, ValueError):
    """A metrics file is missing or not the flat ``<set>.<method>.<metric>`` object; names the file."""


def load_metrics(path: str | Path) -> dict[str, float | None]:
    """The flat matrix from ``metrics.json``; one-line errors for a missing or malformed file.

    A negative value (files written before undefined became null used pycocotools' -1) is read as
    undefined, so it is never shown as a score.
    """
    path = Path(path)
    if not path.is_file():
        raise MetricsFileError(f"{path}: metrics file not found (run the evaluate stage first)")
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MetricsFileError(f"{path}: not valid JSON ({exc})") from None
    numeric = isinstance(data, dict) and all(
        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in data.values()
    )
    if not numeric:
        raise MetricsFileError(f"{path}: expected a flat JSON object of numbers ('<set>.<method>.<metric>')")
    try:
        nest(data)
    except ValueError as exc:
        raise MetricsFileError(f"{path}: {exc}") from None
    return {k: None if v is None or v < 0 else float(v) for k, v in data.items()}


def render(metrics: dict[str, float | None], names: list[str] | None = None) -> str:
    """Every requested metric (default: all present, in the matrix's order) as a sets × methods table."""
    present = list(dict.fromkeys(k.split(".")[2] for k in metrics))
    for name in names or []:
        if name not in present:
            raise MetricsFileError(f"metric {name!r} is not in the file (metrics: {present})")
    blocks = []
    for name in names or present:
        header, rows = sets_by_methods(metrics, name)
        blocks.append(f"{name}: {TITLES.get(name, name)}\n{text_table(header, rows)}")
    return "\n\n".join(blocks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", default="data/eval/metrics.json")
    parser.add_argument("--metric", action="append", help="show only this metric (repeatable), e.g. map")
    args = parser.parse_args(argv)
    print(render(load_metrics(args.path), args.metric))
    return 0


if __name__ == "__main__":
    run_cli(main)
