"""A real Prefect server on 127.0.0.1 serving the scheduled ``repro`` deployment.

Serves the deployment from a temp copy of the project to the session's server
(``prefect_server``: random free port, bounded waits, stopped at the end of the session),
triggers a run through the API, waits for it, checks the produced metrics and the per-stage
task runs, and stops the serving process even on failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from .conftest import copy_project

pytestmark = pytest.mark.slow

CLIENT = textwrap.dedent('''
    import asyncio, json, sys, time
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    async def main():
        async with get_client() as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    dep = await client.read_deployment_by_name("repro/scheduled")
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise SystemExit("deployment never appeared")
                    await asyncio.sleep(1)
            schedules = [s.schedule.cron for s in dep.schedules]
            run = await run_deployment("repro/scheduled", parameters={"stages": ["source", "fetch", "ingest", "stats", "train"]},
                                       timeout=0, client=client)
            deadline = time.monotonic() + 400
            while True:
                fr = await client.read_flow_run(run.id)
                if fr.state and fr.state.is_final():
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"flow run still {fr.state.type if fr.state else None} after 400 s")
                await asyncio.sleep(2)
            from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
            from prefect.client.schemas.sorting import FlowRunSort, TaskRunSort
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
                                                sort=TaskRunSort.EXPECTED_START_TIME_DESC, limit=100)
            from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilterStartTime
            # The server is the session's: only train runs that started during this run are its own.
            train_runs = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["train"])),
                flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=fr.start_time)),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=10)
            print(json.dumps({"state": fr.state.type.value, "schedules": schedules,
                              "tasks": sorted(t.name for t in tasks),
                              "train_runs": [r.state.type.value for r in train_runs]}))

    asyncio.run(main())
''')


def test_served_deployment_runs_pipeline_via_api(tmp_path, prefect_server):
    proj = copy_project(tmp_path / "proj", api_url=prefect_server)
    env = dict(proj.env, PREFECT_HOME=str(tmp_path / "prefect-home"))
    serve = None
    try:
        serve = subprocess.Popen(
            [sys.executable, "-m", "pipeline.flows.deploy", "--repo", str(proj.root), "--cron", "0 3 * * *"],
            cwd=proj.root, env=env, stdout=open(tmp_path / "serve.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out = subprocess.run([sys.executable, "-c", CLIENT], cwd=proj.root, env=env, capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-4000:] + (tmp_path / "serve.log").read_text()[-4000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["state"] == "COMPLETED", (tmp_path / "serve.log").read_text()[-4000:]
        assert result["schedules"] == ["0 3 * * *"]
        assert {"fetch", "ingest", "stats", "train"} <= set(result["tasks"])
        # The train stage's own Prefect flow reported to the same server (nested under DVC).
        assert result["train_runs"] == ["COMPLETED"], result
        assert (proj.root / "data/models/detector/model.pt").is_file()
        stats = json.loads((proj.root / "data/metrics/stats.json").read_text())
        assert stats["overall"]["instances"] > 0
    finally:
        if serve is not None:
            try:
                os.killpg(serve.pid, signal.SIGINT)
                serve.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(serve.pid, signal.SIGKILL)
