"""DVC stage ``fetch``: materialise the data source under --out and write source.json.

With --fingerprint (the ``source`` stage's output) the source's content fingerprint is
recorded in source.json, so ingest and everything below re-run when it changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's `pipeline`, not an installed one

from pipeline.cli import run_cli  # noqa: E402
from pipeline.config import load_params, section, seed  # noqa: E402
from pipeline.data.fingerprint import read_fingerprint  # noqa: E402
from pipeline.data.sources import DataConfig, fetch  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, type=Path, help="raw data folder (data/raw)")
    parser.add_argument("--fingerprint", type=Path, help="the source stage's content fingerprint JSON")
    parser.add_argument("--params", default="params.yaml", type=Path)
    args = parser.parse_args(argv)
    params = load_params(args.params)
    fingerprint = read_fingerprint(args.fingerprint) if args.fingerprint else None
    desc = fetch(section(params, "data", DataConfig), seed(params), args.out, fingerprint=fingerprint)
    print(f"fetch: source {desc['source']} ({desc['format']}) described in {args.out / 'source.json'}")


if __name__ == "__main__":
    run_cli(main)
