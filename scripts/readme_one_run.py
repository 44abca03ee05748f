"""Copy a run's report into the README's "One run at the default budget" section.

    python scripts/readme_one_run.py data/eval/report.md README.md

Takes five sections of ``report.md`` (headline, the mAP@0.5 sets × methods table, intervals,
SR quality, training), demotes their headings to ``####`` and replaces the README's tables
between ``#### Headline (summary.json)`` and the ``**Reading it.**`` paragraph after them.
The prose around them is written by hand from the same run.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

SECTIONS = ("Headline (summary.json)", "Sets × methods", "Intervals", "Super-resolution quality", "Training")
START = "#### Headline (summary.json)"
END = "**Reading it.** Every difference below"


def report_tables(report: str) -> str:
    """The README block: :data:`SECTIONS` of ``report`` with ``####`` headings."""
    found = {}
    for chunk in re.split(r"(?m)^(?=## )", report):
        head = re.match(r"## (.+)\n", chunk)
        if head:
            found[head.group(1).strip()] = chunk
    missing = [name for name in SECTIONS if name not in found]
    if missing:
        raise SystemExit(f"report has no section(s) {missing}; is it a report.md of stages/evaluate.py?")
    blocks = []
    for name in SECTIONS:
        chunk = found[name]
        if name == "Sets × methods":  # the mAP@0.5 table only: cut before the second metric's bold title
            parts = chunk.split("\n**")
            chunk = parts[0] + "\n**" + parts[1]
        blocks.append("##" + chunk.rstrip() + "\n")
    return "\n".join(blocks) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("readme", type=Path)
    args = ap.parse_args()
    readme = args.readme.read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"{args.readme}: no {START!r} ... {END!r} block to replace")
    a, b = readme.index(START), readme.index(END)
    tmp = args.readme.with_suffix(".tmp")
    tmp.write_text(readme[:a] + report_tables(args.report.read_text()) + readme[b:])
    tmp.replace(args.readme)


if __name__ == "__main__":
    main()
