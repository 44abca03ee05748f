"""Cost of the ``source`` stage's content fingerprint on a COCO-layout local folder.

Builds ``--files`` image files of ``--kib`` KiB each (random bytes: what is timed is
hashing, not decoding) in a temp COCO layout and times the fingerprint three times:
``cold`` (every file read, memo written), ``memo`` (nothing changed: stat only) and
``one_edit`` (one annotation file rewritten).  Prints one JSON object.  Usage::

    python bench/bench_source_fingerprint.py [--files 20000] [--kib 16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.data.fingerprint import write_fingerprint  # noqa: E402
from pipeline.data.sources import DataConfig  # noqa: E402


def _layout(root: Path, files: int, kib: int) -> None:
    block = os.urandom(kib * 1024)
    for split, n in (("train2017", files - files // 10), ("val2017", files // 10)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            (root / split / f"{i:012d}.jpg").write_bytes(i.to_bytes(8, "little") + block)
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text('{"images": [], "annotations": []}')


def _timed(cfg: DataConfig, out: Path, memo: Path) -> float:
    t0 = time.perf_counter()
    write_fingerprint(cfg, out, memo)
    return round(time.perf_counter() - t0, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--kib", type=int, default=16, help="size of each image file (COCO mean: ~160 KiB)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, out, memo = Path(tmp) / "coco", Path(tmp) / "fp.json", Path(tmp) / "memo.json"
        _layout(root, args.files, args.kib)
        cfg = DataConfig(source="local", local_path=str(root), local_format="coco")
        result = {"files": args.files, "kib_per_file": args.kib, "cold_s": _timed(cfg, out, memo),
                  "memo_s": _timed(cfg, out, memo)}
        (root / "annotations/instances_val2017.json").write_text('{"images": [], "annotations": [], "x": 1}')
        result["one_edit_s"] = _timed(cfg, out, memo)
        result["memo_bytes"] = memo.stat().st_size
    result |= {"python": platform.python_version(), "cpus": os.cpu_count()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
