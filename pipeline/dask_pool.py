"""Per-image work on a Dask cluster: the scale-out path of :func:`pipeline.parallel.parallel_map`.

Set ``degrade.cluster`` / ``augment.cluster`` to a Dask scheduler address
(``tcp://host:8786``) and the stage's per-image map runs on that cluster's workers
instead of local processes, with the same ordering, bounded in-flight work and
error propagation. The workers read and write the stage's paths directly, so
they must see the same filesystem (one machine, or a shared mount), and have
this package installed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from distributed import Client, WorkerPlugin

# Seconds to wait for the scheduler before giving up with a clear error.
CONNECT_TIMEOUT_S = 20


class _Initializer(WorkerPlugin):
    """Runs ``initializer(*initargs)`` once on every worker, also on workers that join later."""

    def __init__(self, initializer: Callable[..., Any], initargs: Sequence[Any]) -> None:
        self.initializer, self.initargs = initializer, tuple(initargs)

    def setup(self, worker: Any) -> None:  # noqa: ARG002 - WorkerPlugin API
        self.initializer(*self.initargs)


@contextmanager
def dask_client(
    address: str, initializer: Callable[..., Any] | None = None, initargs: Sequence[Any] = ()
) -> Iterator[Client]:
    """A client of the scheduler at ``address``; ``initializer`` runs on each worker first."""
    try:
        client = Client(address, set_as_default=False, timeout=f"{CONNECT_TIMEOUT_S}s")
    except OSError as err:
        raise RuntimeError(f"cannot reach the Dask scheduler at {address!r}: {err}") from err
    plugin = f"pipeline-init-{uuid.uuid4().hex}"
    try:
        if initializer is not None:
            client.register_plugin(_Initializer(initializer, initargs), name=plugin)
        yield client
    finally:
        if initializer is not None:
            client.unregister_worker_plugin(plugin)
        client.close()


def worker_threads(client: Client) -> int:
    """Total worker threads of the cluster (at least 1)."""
    return max(1, sum(client.nthreads().values()))
