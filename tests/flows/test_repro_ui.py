"""``python -m pipeline.flows.repro``: help without a run; stages DVC skipped end 'Skipped' in Prefect.

The flow runs on a real two-stage DVC repo in tmp_path, reporting to the session's real Prefect
server; task-run states are read back through Prefect's client.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import uuid

from tests.flows.conftest import prefect_env

DVC_YAML = textwrap.dedent("""
    stages:
      first:
        cmd: python -c "open('a.txt', 'w').write('a')"
        outs: [a.txt]
      second:
        cmd: python -c "open('b.txt', 'w').write(open('a.txt').read() * 2)"
        deps: [a.txt]
        outs: [b.txt]
""")

RUN = textwrap.dedent("""
    import json
    from pipeline.flows.repro import repro
    from pipeline.runlock import run_lock

    states = {"ran": repro(repo=".", return_state=True), "again": repro(repo=".", return_state=True)}
    with run_lock(".dvc/tmp/repro-flow.lock") as held:  # another run holds the lock
        assert held
        states["locked"] = repro(repo=".", return_state=True)
    print(json.dumps({k: [str(s.state_details.flow_run_id), s.name, s.result()] for k, s in states.items()}))
""")


def _task_states(api_url: str, flow_run_id: str) -> dict[str, str]:
    """{task run name: state name} of one flow run, via Prefect's client."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def read() -> list[dict]:
        async with get_client() as client:
            body = {"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 50, "offset": 0}
            return (await client.request("POST", "/task_runs/filter", json=body)).json()

    with temporary_settings({PREFECT_API_URL: api_url}):
        return {t["name"]: t["state"]["name"] for t in asyncio.run(read())}


def test_help_prints_usage_and_starts_no_run(tmp_path):
    env = prefect_env(tmp_path / "home", "http://127.0.0.1:9/api")  # nothing listens: a run would exit 1
    proc = subprocess.run([sys.executable, "-m", "pipeline.flows.repro", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage: python -m pipeline.flows.repro") and "--stage NAME" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "pipeline.flows.repro", "--stages", "x"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "unrecognized arguments: --stages" in bad.stderr


def test_stages_dvc_skipped_end_in_a_skipped_state(tmp_path, prefect_server):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "dvc.yaml").write_text(DVC_YAML)
    env = prefect_env(tmp_path / "home", prefect_server)
    env.update(DVC_NO_ANALYTICS="1")
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True, timeout=120)
    proc = subprocess.run([sys.executable, "-c", RUN], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert runs["ran"][1:] == ["Completed", {"first": "ran", "second": "ran"}]
    assert runs["again"][1:] == [
        "Completed",
        {"first": "skipped (unchanged)", "second": "skipped (unchanged)"},
    ]
    assert runs["locked"][1:] == ["Skipped", {"status": "skipped: another run in progress"}]
    assert (repo / "b.txt").read_text() == "aa"
    uuid.UUID(runs["ran"][0])
    assert _task_states(prefect_server, runs["ran"][0]) == {"first": "Completed", "second": "Completed"}
    assert _task_states(prefect_server, runs["again"][0]) == {"first": "Skipped", "second": "Skipped"}
    assert _task_states(prefect_server, runs["locked"][0]) == {}
