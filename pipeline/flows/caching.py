"""A Prefect cache policy keyed on the *content* of a task's file inputs.

The key combines: the task's name, the code version (hash of the ``pipeline``
package sources), every non-path argument by value, and the content hash
(md5, see :mod:`pipeline.hashing`) of every argument named in ``path_args``.
An unchanged input is therefore never recomputed, wherever it lives, and a
changed file always is — unlike Prefect's default INPUTS policy, which would
hash the path *string*.

Results and cache records live in the project-local store configured in
``prefect.toml`` (``results.local_storage_path``, default ``.prefect/storage``);
``rm -rf .prefect/storage`` clears the cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.cache_policies import CachePolicy

import pipeline
from pipeline.hashing import HashState, content_hash, tree_source_hash

PACKAGE_DIR = Path(pipeline.__file__).resolve().parent
_code_version: str | None = None


def code_version() -> str:
    """Hash of the pipeline package sources (computed once per process)."""
    global _code_version
    if _code_version is None:
        _code_version = tree_source_hash(PACKAGE_DIR)
    return _code_version


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass
class ContentInputs(CachePolicy):
    """Cache key from file *contents* of ``path_args`` plus the other arguments' values."""

    path_args: tuple[str, ...] = ()
    ignore_args: tuple[str, ...] = ()
    state_file: str | None = ".prefect/hash-state.json"

    def compute_key(self, task_ctx, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any) -> str:
        state = HashState(self.state_file)
        parts: dict[str, Any] = {"task": task_ctx.task.name, "code": code_version()}
        for name, value in sorted(inputs.items()):
            if name in self.ignore_args:
                continue
            if name in self.path_args:
                if isinstance(value, dict):
                    parts[name] = {str(k): content_hash(v, state) for k, v in sorted(value.items())}
                else:
                    paths = value if isinstance(value, (list, tuple)) else [value]
                    parts[name] = [content_hash(p, state) for p in paths]
            else:
                parts[name] = _jsonable(value)
        state.save()
        blob = json.dumps(parts, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()
