"""The train and evaluate flows against the session's real Prefect server: tags, artifacts, clean logs.

One subprocess trains a tiny detector (2 steps) and evaluates it on two tiny real sets; the
test then reads back, through Prefect's client, each flow run's tags, artifacts and log.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid

import numpy as np
import pytest
import yaml

from pipeline.data.schema import ImageRecord
from tests.conftest import build_set
from tests.flows.conftest import prefect_env

CLASSES = ["red", "green"]
PYCOCO_LINES = ("Average Precision", "Average Recall", "Evaluate annotation type", "DONE (t=", "Accumulating")

RUN = """
import json, sys
from pipeline.flows.evaluate import evaluate_flow
from pipeline.flows.train import train_flow
set_dir, other, out = sys.argv[1:4]
t = train_flow(train_set=set_dir, out=out + "/model", params_file="params.yaml", return_state=True)
t.result()  # raises if the flow failed
e = evaluate_flow(checkpoint=out + "/model/model.pt", sets={"hr": set_dir, "copy": other}, reference=set_dir,
                  out=out + "/eval", params_file="params.yaml", return_state=True)
e.result()
print(json.dumps({"train": str(t.state_details.flow_run_id), "evaluate": str(e.state_details.flow_run_id)}))
"""


def _records(split: str) -> list[ImageRecord]:
    boxes = np.array([[8, 8, 30, 34], [40, 36, 60, 58]], np.float32)
    return [
        ImageRecord(
            f"im{i}",
            f"im{i}.jpg",
            split,
            64,
            64,
            boxes,
            np.array([0, 1]),
            np.zeros(2, bool),
            np.zeros(2, bool),
        )
        for i in range(2)
    ]


@pytest.fixture
def project(tmp_path):
    """Tiny train and test sets (real 64 px JPEGs) and a params.yaml for a 2-step width-1/16 SSD300."""
    records = _records("train") + [
        ImageRecord(r.image_id + "t", r.file_name.replace(".", "t."), "test", 64, 64, r.boxes, r.labels,
                    r.difficult, r.iscrowd)
        for r in _records("test")
    ]  # fmt: skip
    name = f"tiny-{uuid.uuid4().hex[:8]}"  # unique: finds this test's runs among the session's
    build_set(tmp_path / name, records, CLASSES)
    build_set(tmp_path / "copy", records, CLASSES, seed=1)
    params = {
        "model": {"variant": "ssd", "width": 0.0625},
        "train": {"steps": 2, "batch_size": 2, "log_every": 1, "warmup_steps": 0, "num_workers": 0},
        "evaluate": {
            "batch_size": 2,
            "pictures": 1,
            "pr_classes": ["red"],
            "picture_score": 0.0,
            "device": "cpu",
            "summary_sets": ["hr", "copy"],
            "summary_small_sets": ["hr"],
            "methods": {"nms": {"method": "nms"}, "softnms": {"method": "soft_linear"}},
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path, name


def _read_back(api_url: str, run_id: str) -> tuple[list[str], dict, list[str]]:
    """(tags, {artifact key: artifact}, log messages) of one flow run, via Prefect's client."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas import filters as f
    from prefect.client.schemas.objects import Artifact
    from prefect.settings import PREFECT_API_URL, temporary_settings

    rid = uuid.UUID(run_id)

    async def read():
        async with get_client() as client:
            run = await client.read_flow_run(rid)
            # Prefect 3.8.8's read_artifacts sends null for every filter left out, which its own server
            # refuses (422), and an empty task-run filter drops flow-level artifacts: the plain request.
            body = {
                "artifacts": {"flow_run_id": {"any_": [str(rid)]}},
                "limit": 50,
                "offset": 0,
                "sort": "CREATED_DESC",
            }
            arts = Artifact.model_validate_list(
                (await client.request("POST", "/artifacts/filter", json=body)).json()
            )
            logs = await client.read_logs(
                log_filter=f.LogFilter(flow_run_id=f.LogFilterFlowRunId(any_=[rid])), limit=200, offset=0
            )
        return list(run.tags), {a.key: a for a in arts}, [log.message for log in logs]

    with temporary_settings({PREFECT_API_URL: api_url}):
        return asyncio.run(read())


def _table(artifact) -> list[dict]:
    return json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data


def test_flow_runs_are_tagged_publish_artifacts_and_keep_pycocotools_out_of_the_log(project, prefect_server):
    root, name = project
    exp = f"exp-{uuid.uuid4().hex[:6]}"
    env = prefect_env(root / "prefect-home", prefect_server)
    env.update(PREFECT_LOGGING_LEVEL="INFO", DVC_EXP_NAME=exp, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(root / name), str(root / "copy"), str(root / "out")],
        cwd=root, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    ids = json.loads(proc.stdout.strip().splitlines()[-1])
    expected_tags = {"variant:ssd", f"train-set:{name}", f"exp:{exp}"}

    tags, arts, logs = _read_back(prefect_server, ids["train"])
    assert expected_tags <= set(tags)
    assert arts["train-summary"].type == "table"
    summary = {row["metric"]: row["value"] for row in _table(arts["train-summary"])}
    assert summary["steps"] == 2 and summary["final loss"] > 0 and summary["images/s"] > 0
    assert any(m.startswith("step 2/2  loss=") for m in logs), logs

    tags, arts, logs = _read_back(prefect_server, ids["evaluate"])
    assert expected_tags <= set(tags)
    assert arts["evaluation-matrix"].type == "table"
    rows = _table(arts["evaluation-matrix"])
    assert sorted(r["set"] for r in rows) == ["copy", "hr"]
    assert all(0.0 <= r[f"{m} mAP@0.5"] <= 1.0 for r in rows for m in ("nms", "softnms"))
    assert all(f"{m} AP_small" in r for r in rows for m in ("nms", "softnms"))
    report = arts["evaluation-report"]
    assert report.type == "markdown" and "## Sets × methods" in report.data
    assert (root / "out" / "eval" / "figures").as_uri() in report.data and "![" not in report.data
    assert (
        f"({(root / 'out' / 'eval' / 'report.html').resolve().as_uri()})"
        in arts["evaluation-report-page"].data
    )
    assert any("predicting" in m for m in logs)  # INFO lines do reach the server...
    assert not [m for m in logs if any(p in m for p in PYCOCO_LINES)]  # ...but no COCO summary
