"""The content-keyed cache: unchanged inputs are reused, a changed file recomputes exactly its dependents.

Each run is its own process (the cache must survive across processes); all of them report to
one shared real server (``prefect_server``) instead of starting an ephemeral server each."""

import json
import textwrap
import urllib.request

FLOW = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    from prefect import flow, task
    from pipeline.flows.caching import ContentInputs

    LOG = Path("calls.log")

    def record(name):
        with LOG.open("a") as f:
            f.write(name + "\\n")

    @task(cache_policy=ContentInputs(path_args=("src",), state_file=None), persist_result=True)
    def upper(src: str, dst: str) -> str:
        record("upper:" + src)
        Path(dst).write_text(Path(src).read_text().upper())
        return dst

    @task(cache_policy=ContentInputs(path_args=("a", "b"), state_file=None), persist_result=True)
    def join(a: str, b: str, sep: str) -> str:
        record("join")
        return Path(a).read_text() + sep + Path(b).read_text()

    @flow
    def demo(sep: str = "|") -> str:
        a = upper("in_a.txt", "out_a.txt")
        b = upper("in_b.txt", "out_b.txt")
        return join(a, b, sep)

    print(json.dumps(demo(sep=sys.argv[1] if len(sys.argv) > 1 else "|")))
''')


def _calls(tmp_path):
    log = tmp_path / "calls.log"
    lines = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return sorted(lines)


def _demo_runs(api_url: str) -> int:
    """Flow runs of ``demo`` the server has recorded."""
    body = json.dumps({"flows": {"name": {"any_": ["demo"]}}}).encode()
    req = urllib.request.Request(f"{api_url}/flow_runs/count", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(json.load(resp))


def test_unchanged_inputs_are_reused_and_changed_file_recomputes_its_dependents(tmp_path, run_py, prefect_server):
    (tmp_path / "flow.py").write_text(FLOW)
    (tmp_path / "in_a.txt").write_text("a")
    (tmp_path / "in_b.txt").write_text("b")
    code = "import runpy, sys; sys.argv=['flow.py']; runpy.run_path('flow.py', run_name='__main__')"
    runs_before = _demo_runs(prefect_server)

    def run() -> str:
        return run_py(code, api_url=prefect_server)

    assert json.loads(run().strip().splitlines()[-1]) == "A|B"
    assert _calls(tmp_path) == ["join", "upper:in_a.txt", "upper:in_b.txt"]

    # Second run, nothing changed: every task result comes from the cache.
    assert json.loads(run().strip().splitlines()[-1]) == "A|B"
    assert _calls(tmp_path) == []

    # Same content rewritten (new mtime): still cached — the key is content, not path or time.
    (tmp_path / "in_b.txt").write_text("b")
    run()
    assert _calls(tmp_path) == []

    # One input's content changes: exactly that task and its dependent recompute.
    (tmp_path / "in_a.txt").write_text("x")
    assert json.loads(run().strip().splitlines()[-1]) == "X|B"
    assert _calls(tmp_path) == ["join", "upper:in_a.txt"]
    assert _demo_runs(prefect_server) == runs_before + 4  # every run reported to the shared server
