"""Map a function over items on a process pool: ordered, bounded, with progress.

Used by the data stages (degrade, augment) so that per-image work spreads over
all cores while only a bounded number of items is ever in flight (the dataset is
streamed, never held in memory).
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

    A worker exception is re-raised here after pending work is cancelled.
    """
    n_workers = resolve_workers(workers)
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
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
            pending: deque[Future[R]] = deque()
            try:
                for item in items:
                    pending.append(pool.submit(fn, item))
                    if len(pending) >= limit:
                        yield pending.popleft().result()
                        bar.update(1)
                while pending:
                    yield pending.popleft().result()
                    bar.update(1)
            except BaseException:
                for fut in pending:
                    fut.cancel()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        bar.close()
