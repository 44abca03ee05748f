"""One entry-point wrapper for every stage script and ``python -m pipeline.*`` CLI.

A :class:`~pipeline.errors.PipelineError` (a bad param, source, archive, checkpoint...)
is printed as one line ``error: <message>`` on stderr with exit code 2 — no
traceback; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

from pipeline.errors import PipelineError

USER_ERROR_EXIT = 2


def run_cli(main: Callable[[], int | None]) -> NoReturn:
    """Run ``main()`` and exit with its return code (0 for None), or 2 on a user error."""
    try:
        code = main()
    except PipelineError as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT) from None
    raise SystemExit(code or 0)
