"""Shared fixtures: paths to the genuine data in ../shared and tiny real image sets."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.images import write_image
from pipeline.data.schema import ImageRecord, images_dir, records_to_table, table_path, write_table

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (genuine VOC/COCO samples); skips if absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"genuine data not found at {SHARED_DATA}")
    return SHARED_DATA


def build_set(
    root: Path,
    records: Sequence[ImageRecord],
    classes: Sequence[str],
    seed: int = 0,
) -> Path:
    """Write a real set directory: textured JPEGs with filled boxes + annotations.parquet."""
    rng = np.random.default_rng(seed)
    for r in records:
        img = rng.integers(60, 120, size=(r.height, r.width, 3), dtype=np.uint8)
        for box, label in zip(r.boxes, r.labels, strict=True):
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            img[y0:y1, x0:x1] = (np.array([200, 40 + 50 * int(label), 30]) % 256).astype(np.uint8)
        write_image(images_dir(root) / r.file_name, img)
    write_table(table_path(root), records_to_table(records, classes))
    return root


@pytest.fixture
def make_set(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_set(records, classes, name="set")`` -> set directory under tmp_path."""

    def _make(records: Sequence[ImageRecord], classes: Sequence[str], name: str = "set") -> Path:
        return build_set(tmp_path / name, records, classes)

    return _make


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[str]:
    """A real local Dask cluster on 127.0.0.1 (2 worker processes, 1 thread each); yields its address."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory) -> Iterator[str]:
    """One real Prefect server on 127.0.0.1 (own PREFECT_HOME, random free port) for the session;
    yields its API URL.  Starting it once replaces the ephemeral server every flow subprocess
    (Prefect flows, DVC stages that run one) would otherwise start for itself; it is stopped at
    the end of the session, and then nothing may be left listening.  Imported lazily: most
    tests never need Prefect."""
    from pipeline.flows.server import healthy, launch

    root = tmp_path_factory.mktemp("prefect-server")
    server = launch(home=root / "home", cwd=root, timeout=120)
    try:
        yield server.url
    finally:
        server.stop()
    assert server.process.poll() is not None, "the session's Prefect server outlived stop()"
    assert not healthy(server.url, timeout=1.0), f"{server.url} still answers after the server stopped"
