"""No stale metric: every DVC stage lists the code it runs in its ``deps``.

The import closure of each stage script inside this repo's ``pipeline`` package is
computed statically (``ast``, transitively, lazy imports inside functions included);
each module in it must lie under one of the stage's dep paths as DVC itself
resolves them (``${...}`` interpolated from params.yaml).  A package ``__init__.py``
that only holds a docstring and constants runs no code a result could depend on and
is exempt.
"""

from __future__ import annotations

import ast
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from dvc.repo import Repo

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "pipeline"


def module_file(name: str) -> Path | None:
    """``pipeline.data.ingest`` -> its file in this repo, or None if not a module."""
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _package_of(path: Path) -> str:
    """The package a relative import in ``path`` starts from (``pipeline/data/x.py`` -> ``pipeline.data``)."""
    return ".".join(path.relative_to(REPO).parts[:-1])


@cache
def direct_imports(path: Path) -> frozenset[str]:
    """Modules of the ``pipeline`` package that ``path`` imports (at any depth of its code)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = _package_of(path).split(".")
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join([*pkg, base] if base else pkg)
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    out = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != PACKAGE:
            continue
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
            if module_file(".".join(parts[:i])):
                out.add(".".join(parts[:i]))
    return frozenset(out)


def import_closure(script: Path) -> set[Path]:
    """Files of ``pipeline`` that running ``script`` may import."""
    seen: set[str] = set()
    todo = list(direct_imports(script))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(direct_imports(module_file(name)))  # type: ignore[arg-type]
    return {module_file(n) for n in seen}  # type: ignore[misc]


def _trivial_init(path: Path) -> bool:
    if path.name != "__init__.py":
        return False
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, (ast.Expr, ast.Assign)) and isinstance(n.value, ast.Constant) for n in body)


def uncovered(script: Path, deps: list[str]) -> list[str]:
    """Modules in ``script``'s import closure that no dep path covers (repo-relative)."""
    roots = [(REPO / d).resolve() for d in deps]
    missing = []
    for path in sorted(import_closure(script) | {script}):
        if _trivial_init(path):
            continue
        if not any(path == r or r in path.parents for r in roots):
            missing.append(path.relative_to(REPO).as_posix())
    return missing


def dvc_stages(root: Path) -> dict[str, tuple[Path, list[str]]]:
    """{stage: (script it runs, its deps as DVC resolves them)} of the DVC project at ``root``."""
    out = {}
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            scripts = [t for t in shlex.split(stage.cmd) if t.startswith("stages/") and t.endswith(".py")]
            assert len(scripts) == 1, f"{stage.name}: cannot tell its script from {stage.cmd!r}"
            out[stage.name] = (REPO / scripts[0], [str(d.def_path) for d in stage.deps])
    return out


STAGES = dvc_stages(REPO)


def test_every_stage_script_is_a_dvc_stage():
    assert sorted(p.name for p, _ in STAGES.values()) == sorted(p.name for p in (REPO / "stages").glob("*.py"))


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_deps_cover_the_import_closure(stage):
    script, deps = STAGES[stage]
    assert uncovered(script, deps) == [], f"dvc.yaml stage {stage!r}: add these (or their folder) to deps"


def test_closure_is_transitive_and_follows_lazy_imports():
    closure = {p.relative_to(REPO).as_posix() for p in import_closure(REPO / "stages/evaluate.py")}
    # evaluate -> flows.evaluate -> evaluation.infer -> postprocess -> ... and detector via load_model_for_eval
    assert {"pipeline/config.py", "pipeline/atomic.py", "pipeline/detector/coding.py",
            "pipeline/postprocess/soft_nms.py", "pipeline/flows/caching.py"} <= closure
    # pipeline/parallel.py imports pipeline.dask_pool inside a function only
    assert "pipeline/dask_pool.py" in {p.relative_to(REPO).as_posix() for p in import_closure(REPO / "stages/degrade.py")}


def test_a_trimmed_deps_list_is_caught(tmp_path):
    """The check fails on a dvc.yaml that misses a module, ``${...}`` deps resolved by DVC."""
    Repo.init(str(tmp_path), no_scm=True).close()
    (tmp_path / "params.yaml").write_text("code: pipeline/detector\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  evaluate:\n"
        "    cmd: python stages/evaluate.py\n"
        "    deps: [stages/evaluate.py, pipeline/evaluation, pipeline/postprocess, pipeline/flows, pipeline/data,\n"
        "           pipeline/config.py, pipeline/atomic.py, pipeline/errors.py, pipeline/cli.py, pipeline/hashing.py,\n"
        "           pipeline/plots.py, '${code}']\n"
    )
    script, deps = dvc_stages(tmp_path)["evaluate"]
    assert "pipeline/detector" in deps  # interpolated by DVC
    base = uncovered(script, deps)
    assert "pipeline/detector/coding.py" not in base
    trimmed = uncovered(script, [d for d in deps if d != "pipeline/detector"])
    assert "pipeline/detector/coding.py" in trimmed and "pipeline/detector/model.py" in trimmed
    assert "pipeline/config.py" in uncovered(script, [d for d in deps if d != "pipeline/config.py"])


BOOTSTRAP = "sys.path.insert(0, str(Path(__file__).resolve().parents[1]))"


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "stages").glob("*.py")))
def test_every_stage_puts_its_checkout_first_before_importing_pipeline(script):
    """The bootstrap line runs at module level before the first ``pipeline`` import."""
    tree = ast.parse((REPO / "stages" / script).read_text())
    first_import = next(i for i, node in enumerate(tree.body) if isinstance(node, ast.ImportFrom)
                        and (node.module or "").split(".")[0] == PACKAGE)
    assert BOOTSTRAP in [ast.unparse(node) for node in tree.body[:first_import]]


def test_a_stage_run_from_the_repo_imports_this_checkouts_pipeline(tmp_path):
    """A decoy ``pipeline`` first on PYTHONPATH (as an installed copy would be) is not what a stage runs."""
    decoy = tmp_path / "decoy" / "pipeline"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('the decoy pipeline was imported')\n")
    env = {"PYTHONPATH": str(decoy.parent)}
    r = subprocess.run([sys.executable, "-c", "import pipeline"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert "the decoy pipeline was imported" in r.stderr  # the decoy does shadow a plain import
    r = subprocess.run([sys.executable, str(REPO / "stages/degrade.py"), "--help"], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0 and "usage: degrade.py" in r.stdout, r.stderr[-2000:]


def test_repro_flow_takes_order_and_staleness_from_dvc(tmp_path):
    """Stages listed downstream-first and linked only through ``${...}``: DVC's order, DVC's status."""
    from pipeline.flows.repro import stage_changed, stage_order

    Repo.init(str(tmp_path), no_scm=True).close()
    (tmp_path / "params.yaml").write_text("src: made\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  second:\n"
        "    cmd: cat ${src}/a.txt > b.txt\n"
        "    deps: ['${src}/a.txt']\n"
        "    outs: [b.txt]\n"
        "  first:\n"
        "    cmd: mkdir -p ${src} && echo hi > ${src}/a.txt\n"
        "    outs: ['${src}/a.txt']\n"
    )
    assert stage_order(tmp_path) == ["first", "second"]
    assert stage_changed(tmp_path, "first") and stage_changed(tmp_path, "second")
    with Repo(str(tmp_path)) as repo:
        repo.reproduce(str(tmp_path / "dvc.yaml") + ":first", single_item=True)
    assert not stage_changed(tmp_path, "first") and stage_changed(tmp_path, "second")
