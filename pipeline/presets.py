"""Named experiment presets: each is a set of ``params.yaml`` overrides for ``dvc exp run -S``.

    python -m pipeline.presets list
    python -m pipeline.presets run quick                      # the whole pipeline in minutes on 2 CPU cores
    python -m pipeline.presets run shallow fem -S train.steps=600   # extra overrides for every preset named
    python -m pipeline.presets run shallow fem --queue         # queue only; then `dvc queue start`
    dvc exp show --only-changed --no-pager --drop 'data/|Created|State|Executor'   # side by side, terminal-wide

Presets compose by listing several; each becomes one experiment named after it.
``-S key=value`` overrides apply to every preset named and win over the preset's own
value for the same key; every key must already exist in ``params.yaml``.
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.config import ConfigError, load_params, suggest
from pipeline.dvc_cli import dvc_argv, dvc_env
from pipeline.errors import PipelineError

PRESETS: dict[str, dict[str, str]] = {
    "baseline": {"model.variant": "ssd"},
    # The whole `dvc exp run` (every stage from the data on) in about 5 minutes on 2 CPU cores:
    # half the images, a short SR phase, SR sets of the test split only (so train on hr, lr or
    # hr_copypaste), 400 detector steps. Measured figures: README "Compare variants".
    "quick": {
        "data.embedded.num_train": "100",
        "data.embedded.num_test": "30",
        "sr.train.pretrain_iters": "100",
        "sr.train.gan_iters": "30",
        "sr.perceptual.steps": "50",
        "sr.infer.splits": "[test]",
        "train.steps": "400",
    },
    "shallow": {"model.variant": "shallow"},
    "shallow_fem": {"model.variant": "shallow+fem"},
    "fem": {"model.variant": "fem"},
    "atss": {"model.variant": "atss"},
    "mdssd": {"model.variant": "mdssd"},
    "copypaste": {"train.train_set": "hr_copypaste"},
    "shallow_copypaste": {"model.variant": "shallow", "train.train_set": "hr_copypaste"},
}

# params.yaml mappings whose entries are user-named (a new entry is not a typo)
OPEN_SECTIONS = {"evaluate.methods", "data.checksums"}


def parse_override(text: str) -> tuple[str, str]:
    """``"train.steps=600"`` -> ``("train.steps", "600")``; a malformed one is a one-line error."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"-S {text!r}: expected key=value with a dotted params.yaml key, e.g. train.steps=600")
    return key, value


def check_key(params: Mapping[str, Any], key: str) -> None:
    """Raise a one-line error naming ``key`` unless it is a key path of ``params``
    (or a new entry of a mapping in :data:`OPEN_SECTIONS`)."""
    node: Any = params
    done: list[str] = []
    for part in key.split("."):
        if not isinstance(node, Mapping):
            raise ConfigError(f"-S {key}: params.yaml key {'.'.join(done)!r} is a value, not a section")
        if part not in node and ".".join(done) in OPEN_SECTIONS:
            return
        if part not in node:
            where = ".".join(done) or "the top level"
            raise ConfigError(f"-S {key}: no key {part!r} under {where} of params.yaml; {suggest(part, node)}")
        node = node[part]
        done.append(part)


def dvc_exp_command(name: str, queue: bool = False, overrides: Mapping[str, str] | None = None) -> list[str]:
    """``dvc exp run`` arguments for preset ``name`` plus ``overrides`` (which win on a shared key)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; {suggest(name, PRESETS)}")
    cmd = dvc_argv("exp", "run", "-n", name)
    if queue:
        cmd.append("--queue")
    for key, value in {**PRESETS[name], **(overrides or {})}.items():
        cmd += ["-S", f"{key}={value}"]
    return cmd


def commands(
    names: Sequence[str], overrides: Sequence[str], queue: bool, params_file: str = "params.yaml"
) -> list[list[str]]:
    """Every ``dvc exp run`` command of a ``run``, all inputs checked before the first one starts."""
    for name in names:
        dvc_exp_command(name)  # an unknown preset fails before params.yaml is read
    extra = dict(parse_override(text) for text in overrides)
    params = load_params(params_file)
    for name in names:
        for key in {**PRESETS[name], **extra}:
            check_key(params, key)
    return [dvc_exp_command(name, queue, extra) for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list")
    run = sub.add_parser("run")
    run.add_argument("names", nargs="+")
    run.add_argument("-S", "--set-param", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="params.yaml override for every preset named (repeatable), as `dvc exp run -S`")
    run.add_argument("--queue", action="store_true", help="queue the experiments; run them with `dvc queue start`")
    run.add_argument("--params", default="params.yaml", help="params file the keys are checked against")
    run.add_argument("--dry-run", action="store_true", help="print the dvc commands only")
    args = parser.parse_args(argv)
    if args.action == "list":
        for name, overrides in PRESETS.items():
            print(f"{name:20s} " + " ".join(f"-S {k}={v}" for k, v in overrides.items()))
        return 0
    for cmd in commands(args.names, args.overrides, args.queue, args.params):
        print("$", " ".join(["dvc", *cmd[3:]]))
        if not args.dry_run and subprocess.run(cmd, env=dvc_env()).returncode != 0:
            raise PipelineError(f"dvc exp run for preset {cmd[cmd.index('-n') + 1]!r} failed (its error is above)")
    if args.queue and not args.dry_run:
        print("queued; run them with `dvc queue start` and follow with `dvc queue status`")
    return 0


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)
