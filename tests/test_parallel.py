import os

import pytest

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
