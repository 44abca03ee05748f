import os
import subprocess
import sys
import textwrap

from pipeline.hashing import HashState, content_hash
from pipeline.runlock import run_lock


def test_content_hash_follows_content_not_timestamps(tmp_path):
    d = tmp_path / "set"
    (d / "images").mkdir(parents=True)
    (d / "images" / "a.jpg").write_bytes(b"abc")
    (d / "t.parquet").write_bytes(b"table")
    h1 = content_hash(d)
    os.utime(d / "images" / "a.jpg", ns=(1, 1))
    assert content_hash(d) == h1
    (d / "images" / "a.jpg").write_bytes(b"abd")
    h2 = content_hash(d)
    assert h2 != h1 and h2.endswith(".dir")
    (d / "images" / "a.jpg").rename(d / "images" / "b.jpg")
    assert content_hash(d) != h2


def test_hash_state_memo_persists(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"1" * 1000)
    state = HashState(tmp_path / "state.json")
    digest = content_hash(f, state)
    state.save()
    assert digest in (tmp_path / "state.json").read_text()
    assert content_hash(f, HashState(tmp_path / "state.json")) == digest


def test_run_lock_excludes_a_second_process(tmp_path):
    lock = tmp_path / "l.lock"
    probe = textwrap.dedent(f"""
        from pipeline.runlock import run_lock
        with run_lock({str(lock)!r}, wait_s=0.2) as held:
            print(held)
    """)
    with run_lock(lock) as held:
        assert held
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "False"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
