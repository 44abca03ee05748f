"""DVC stage ``source``: write the data source's content fingerprint (runs on every repro).

For ``data.source: local`` it hashes the annotation files and images the splits read
(stat-memoised in --state); for the other sources it names the source only.  fetch
depends on --out, so DVC re-runs fetch and everything below only when it changes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's `pipeline`, not an installed one

from pipeline.cli import run_cli  # noqa: E402
from pipeline.config import load_params, section  # noqa: E402
from pipeline.data.fingerprint import write_fingerprint  # noqa: E402
from pipeline.data.sources import DataConfig  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, type=Path, help="fingerprint JSON (data/source/fingerprint.json)")
    parser.add_argument("--state", type=Path, help="memo of file digests keyed on stat (kept between runs)")
    parser.add_argument("--params", default="params.yaml", type=Path)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    fp = write_fingerprint(section(load_params(args.params), "data", DataConfig), args.out, args.state)
    what = f"{len(fp['content'])} path(s) hashed" if "content" in fp else "tracked by params"
    print(f"source: {fp['source']} ({what}) in {time.perf_counter() - start:.1f} s -> {args.out}")


if __name__ == "__main__":
    run_cli(main)
