"""The project's own error base class.

Every error that reports a user mistake or a bad input (config, source, ingest,
download, archive, checkpoint, weights, schema...) subclasses :class:`PipelineError`,
so one CLI wrapper (:func:`pipeline.cli.run_cli`) can print it as one line.
"""

from __future__ import annotations


class PipelineError(Exception):
    """A user-facing error: its message alone says what is wrong and where."""
