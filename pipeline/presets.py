"""Named experiment presets: each is a set of ``params.yaml`` overrides for ``dvc exp run -S``.

    python -m pipeline.presets list
    python -m pipeline.presets run shallow fem atss      # queue + run as DVC experiments
    dvc exp show --only-changed                          # side by side

Presets compose by listing several; each becomes one experiment named after it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from pipeline.config import ConfigError, suggest

PRESETS: dict[str, dict[str, str]] = {
    "baseline": {"model.variant": "ssd"},
    "shallow": {"model.variant": "shallow"},
    "shallow_fem": {"model.variant": "shallow+fem"},
    "fem": {"model.variant": "fem"},
    "atss": {"model.variant": "atss"},
    "mdssd": {"model.variant": "mdssd"},
    "copypaste": {"train.train_set": "hr_copypaste"},
    "shallow_copypaste": {"model.variant": "shallow", "train.train_set": "hr_copypaste"},
}


def dvc_exp_command(name: str, queue: bool = False) -> list[str]:
    """``dvc exp run`` arguments for preset ``name``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; {suggest(name, PRESETS)}")
    cmd = [sys.executable, "-m", "dvc", "exp", "run", "-n", name]
    if queue:
        cmd.append("--queue")
    for key, value in PRESETS[name].items():
        cmd += ["-S", f"{key}={value}"]
    return cmd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list")
    run = sub.add_parser("run")
    run.add_argument("names", nargs="+")
    run.add_argument("--dry-run", action="store_true", help="print the dvc commands only")
    args = parser.parse_args(argv)
    if args.action == "list":
        for name, overrides in PRESETS.items():
            print(f"{name:20s} " + " ".join(f"-S {k}={v}" for k, v in overrides.items()))
        return 0
    for name in args.names:
        cmd = dvc_exp_command(name)
        print("$", " ".join(cmd[2:]) if cmd[1] == "-m" else " ".join(cmd))
        if not args.dry_run:
            subprocess.run(cmd, check=True)
    return 0


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)
