"""SR recipe sweep: train SRResNet with each override set, super-resolve the test split, report the PSNR gain.

    python bench/sweep_sr_recipe.py --repo . --out sr_sweep.jsonl \\
        '{"p16_it1600": {"sr.train.pretrain_iters": 1600}, "p32_it800": {"sr.train.pretrain_iters": 800, "sr.train.patch_size": 32}}'

Needs ``data/sets/{hr,lr}`` in ``--repo`` (``dvc repro degrade``). Each run uses the repo's stage scripts
(``stages/sr_train.py``, ``stages/sr_infer.py``) with a params file = ``params.yaml`` + the overrides (SR of the
test split only) under ``<repo>/sweep/<name>/``; one JSON line per run: overrides, training wall and CPU
seconds, SR and bicubic PSNR and the gain.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml


def _params(base: dict, overrides: dict) -> dict:
    p = copy.deepcopy(base)
    p["sr"]["infer"]["splits"] = ["test"]
    for key, value in overrides.items():
        node = p
        *path, last = key.split(".")
        for part in path:
            node = node[part]
        if last not in node:
            raise SystemExit(f"error: override {key}: no such key in params.yaml")
        node[last] = value
    return p


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(repo: Path, name: str, overrides: dict, base: dict) -> dict:
    d = repo / "sweep" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "params.yaml").write_text(yaml.safe_dump(_params(base, overrides)))
    c0, t0 = _cpu(), time.time()
    with open(d / "train.log", "w") as log:
        subprocess.run([sys.executable, "stages/sr_train.py", "--hr", "data/sets/hr", "--lr", "data/sets/lr",
                        "--out", str(d / "model"), "--params", str(d / "params.yaml")],
                       cwd=repo, check=True, stdout=subprocess.DEVNULL, stderr=log)
    c1, t1 = _cpu(), time.time()
    with open(d / "infer.log", "w") as log:
        subprocess.run([sys.executable, "stages/sr_infer.py", "--lr", "data/sets/lr", "--hr", "data/sets/hr",
                        "--model", str(d / "model/generator.pth"), "--sr-out", str(d / "sr"),
                        "--bicubic-out", str(d / "bicubic"), "--metrics", str(d / "quality.json"),
                        "--figure", str(d / "side_by_side.png"), "--params", str(d / "params.yaml")],
                       cwd=repo, check=True, stdout=subprocess.DEVNULL, stderr=log)
    q = json.loads((d / "quality.json").read_text())
    return {"name": name, **overrides, "train_wall_s": round(t1 - t0, 1), "train_cpu_s": round(c1 - c0, 1),
            "sr_psnr": q["sr"]["psnr"], "bicubic_psnr": q["bicubic"]["psnr"], "gain_db": q["psnr_gain_db"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", help='JSON: {"name": {"sr.train.key": value, ...}, ...}')
    ap.add_argument("--repo", type=Path, default=Path("."))
    ap.add_argument("--out", type=Path, default=Path("sr_sweep.jsonl"))
    args = ap.parse_args()
    base = yaml.safe_load((args.repo / "params.yaml").read_text())
    for name, overrides in json.loads(args.configs).items():
        rec = run(args.repo.resolve(), name, overrides, base)
        with open(args.out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
