"""Helpers for tests that run work on the real local Dask cluster (fixture ``dask_cluster``)."""

from __future__ import annotations


def dask_tasks_run(address: str, name: str) -> int:
    """How many tasks whose key prefix contains ``name`` the cluster at ``address`` has finished."""
    import distributed

    with distributed.Client(address, set_as_default=False) as client:
        counts = client.run_on_scheduler(
            lambda dask_scheduler: {k: v.state_counts["memory"] for k, v in dask_scheduler.task_prefixes.items()}
        )
    return sum(n for prefix, n in counts.items() if name in prefix)
