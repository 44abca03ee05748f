import os

import pytest

from pipeline import dask_pool
from pipeline.parallel import parallel_map, resolve_workers

_STATE: dict[str, int] = {}


def _init(offset: int) -> None:
    _STATE["offset"] = offset


def _work(x: int) -> tuple[int, int]:
    if x == 13:
        raise ValueError(f"item {x} is unlucky")
    return x * x + _STATE.get("offset", 0), os.getpid()


def test_resolve_workers_zero_means_all_cores():
    assert resolve_workers(0) >= 1
    assert resolve_workers(3) == 3


@pytest.mark.parametrize("workers", [1, 2])
def test_results_in_input_order_with_initializer(workers):
    out = list(parallel_map(_work, range(12), workers=workers, initializer=_init, initargs=(5,), progress=False))
    assert [v for v, _ in out] == [x * x + 5 for x in range(12)]
    pids = {p for _, p in out}
    assert (pids == {os.getpid()}) if workers == 1 else (os.getpid() not in pids)


def test_in_flight_work_is_bounded():
    consumed = []

    def items():
        for i in range(40):
            consumed.append(i)
            yield i + 20

    for n_yielded, _ in enumerate(parallel_map(_work, items(), workers=2, max_in_flight=3, progress=False), 1):
        assert len(consumed) - n_yielded <= 3
    assert n_yielded == 40


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_error_propagates(workers):
    with pytest.raises(ValueError, match="item 13 is unlucky"):
        list(parallel_map(_work, range(20), workers=workers, progress=False))


def test_dask_cluster_runs_in_order_with_initializer_on_its_workers(dask_cluster):
    out = list(parallel_map(_work, range(12), cluster=dask_cluster, initializer=_init, initargs=(7,), progress=False))
    assert [v for v, _ in out] == [x * x + 7 for x in range(12)]
    assert os.getpid() not in {p for _, p in out}  # ran in the cluster's worker processes


def test_dask_in_flight_work_is_bounded(dask_cluster):
    consumed = []

    def items():
        for i in range(30):
            consumed.append(i)
            yield i + 20

    out = parallel_map(_work, items(), cluster=dask_cluster, max_in_flight=3, progress=False)
    for n_yielded, _ in enumerate(out, 1):
        assert len(consumed) - n_yielded <= 3
    assert n_yielded == 30


def test_dask_worker_error_propagates(dask_cluster):
    with pytest.raises(ValueError, match="item 13 is unlucky"):
        list(parallel_map(_work, range(20), cluster=dask_cluster, progress=False))


def test_unreachable_cluster_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(dask_pool, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(RuntimeError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        list(parallel_map(_work, range(3), cluster="tcp://127.0.0.1:9", progress=False))
