"""DVC stage ``fetch``: materialise the data source under --out and write source.json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import load_params, section  # noqa: E402
from pipeline.data.sources import DataConfig, fetch  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, type=Path, help="raw data folder (data/raw)")
    parser.add_argument("--params", default="params.yaml", type=Path)
    args = parser.parse_args(argv)
    params = load_params(args.params)
    seed = params.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SystemExit(f"seed: expected an integer, got {seed!r}")
    desc = fetch(section(params, "data", DataConfig), seed, args.out)
    print(f"fetch: source {desc['source']} ({desc['format']}) described in {args.out / 'source.json'}")


if __name__ == "__main__":
    main()
