"""ServerProcess.stop reaps its own child: it returns once the group is gone, not at its timeout."""

import os
import subprocess
import time

import pytest

from pipeline.flows.server import ServerProcess


def test_stop_returns_when_the_child_exits_not_at_the_timeout(tmp_path):
    child = subprocess.Popen(["sleep", "300"], start_new_session=True)
    server = ServerProcess(child, "http://127.0.0.1:1/api", tmp_path / "log")
    t0 = time.monotonic()
    server.stop(timeout=20)
    assert time.monotonic() - t0 < 10  # an unreaped zombie used to hold the group until SIGKILL at 20 s
    assert child.returncode == -15  # ended by the SIGTERM, not the SIGKILL
    with pytest.raises(ProcessLookupError):
        os.killpg(child.pid, 0)
