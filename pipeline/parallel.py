"""Map a function over items on a process pool or a Dask cluster: ordered, bounded, with progress.

Used by the data stages (degrade, augment) so that per-image work spreads over
all cores (or a cluster's workers, :mod:`pipeline.dask_pool`) while only a
bounded number of items is ever in flight (the dataset is streamed, never held
in memory).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")


def resolve_workers(workers: int) -> int:
    """``workers <= 0`` -> the number of cores this process may use, else ``workers``."""
    if workers > 0:
        return workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _context(start_method: str | None, *funcs: Callable[..., Any] | None) -> mp.context.BaseContext:
    """The pool's multiprocessing context; a new forkserver preloads the modules of ``funcs``."""
    if start_method is None:
        start_method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(start_method)
    if start_method == "forkserver":
        modules = sorted({f.__module__ for f in funcs if f is not None and f.__module__ != "__main__"})
        ctx.set_forkserver_preload(modules)  # only takes effect when the server first starts
    return ctx


def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int = 0,
    max_in_flight: int | None = None,
    desc: str | None = None,
    total: int | None = None,
    initializer: Callable[..., Any] | None = None,
    initargs: Sequence[Any] = (),
    start_method: str | None = None,
    progress: bool = True,
    cluster: str | None = None,
) -> Iterator[R]:
    """Yield ``fn(item)`` for every item, in input order.

    Args:
        fn: a picklable (module-level) function.
        items: consumed lazily; at most ``max_in_flight`` items are submitted
            and not yet yielded at any time.
        workers: processes; 0 = all cores; 1 = run inline in this process
            (no pool, same results, easy to debug).
        max_in_flight: bound on submitted-but-unyielded items (default 4 x workers).
        desc, total: tqdm label and length (``total`` defaults to ``len(items)``).
        initializer, initargs: run once per worker (and once inline when
            ``workers == 1``), e.g. to install read-only shared state.
        start_method: multiprocessing start method; default "forkserver" (else
            "spawn"): workers fork from a clean single-threaded server, which is safe
            in processes that already run threads (pyarrow, torch, Prefect), unlike
            "fork", and starts pools far faster than "spawn" once the server is up
            (measured on 2 loaded cores: ~1.0 s first pool, ~0.2 s later pools,
            versus ~2.3 s per pool with "spawn").
        progress: show a tqdm bar.
        cluster: a Dask scheduler address: run on its workers instead (``workers``
            is then ignored; ``max_in_flight`` defaults to 4 x its worker threads).

    A worker exception is re-raised here after pending work is cancelled.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if cluster:
        yield from _on_cluster(fn, items, cluster, max_in_flight, desc, total, initializer, initargs, progress)
        return
    n_workers = resolve_workers(workers)
    if total is not None:
        n_workers = max(1, min(n_workers, total))
    bar = tqdm(total=total, desc=desc, unit="img", disable=not progress, dynamic_ncols=True)
    try:
        if n_workers == 1:
            if initializer is not None:
                initializer(*initargs)
            for item in items:
                yield fn(item)
                bar.update(1)
            return
        limit = max_in_flight or 4 * n_workers
        with ProcessPoolExecutor(
            n_workers, mp_context=_context(start_method, fn, initializer), initializer=initializer, initargs=tuple(initargs)
        ) as pool:

            def cancel(pending: deque[Future[R]]) -> None:
                for fut in pending:
                    fut.cancel()
                pool.shutdown(wait=True, cancel_futures=True)

            yield from _ordered(pool.submit, cancel, fn, items, limit, bar)
    finally:
        bar.close()


def _on_cluster(
    fn: Callable[[T], R],
    items: Iterable[T],
    cluster: str,
    max_in_flight: int | None,
    desc: str | None,
    total: int | None,
    initializer: Callable[..., Any] | None,
    initargs: Sequence[Any],
    progress: bool,
) -> Iterator[R]:
    from pipeline.dask_pool import dask_client, worker_threads

    with dask_client(cluster, initializer, initargs) as client:
        bar = tqdm(total=total, desc=f"{desc or 'map'} @ {cluster}", unit="img", disable=not progress, dynamic_ncols=True)
        try:
            submit = lambda f, item: client.submit(f, item, pure=False)  # noqa: E731 - every item runs
            cancel = lambda pending: client.cancel(list(pending))  # noqa: E731
            yield from _ordered(submit, cancel, fn, items, max_in_flight or 4 * worker_threads(client), bar)
        finally:
            bar.close()


def _ordered(
    submit: Callable[[Callable[[T], R], T], Any],
    cancel: Callable[[deque[Any]], None],
    fn: Callable[[T], R],
    items: Iterable[T],
    limit: int,
    bar: tqdm,
) -> Iterator[R]:
    """Submit items while at most ``limit`` are pending; yield results in input order."""
    pending: deque[Any] = deque()
    try:
        for item in items:
            pending.append(submit(fn, item))
            if len(pending) >= limit:
                yield pending.popleft().result()
                bar.update(1)
        while pending:
            yield pending.popleft().result()
            bar.update(1)
    except BaseException:
        cancel(pending)
        raise
