"""Locks for reruns after kill -9: one `superion md` per run directory; stale Snakemake locks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from superion import locks
from superion.errors import SuperionError

HOLD = """
import sys, time
from superion.locks import run_dir_lock
with run_dir_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold(run, seconds: float):
    first = subprocess.Popen([sys.executable, "-c", HOLD, str(run), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "locked"
    return first


def test_second_holder_fails_at_once_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    first = _hold(run, 30)
    try:
        t0 = time.monotonic()
        with pytest.raises(SuperionError) as err:
            with locks.run_dir_lock(run, log=pytest.fail):
                pytest.fail("took a held lock")
        assert time.monotonic() - t0 < 1.0
        msg = str(err.value)
        assert "\n" not in msg and f"pid {first.pid} on {socket.gethostname()}" in msg
        assert "--wait-for-lock" in msg
    finally:
        first.kill()
        first.wait()


def test_wait_for_lock_gives_up_after_its_time(tmp_path):
    run = tmp_path / "run"
    first = _hold(run, 30)
    try:
        said = []
        t0 = time.monotonic()
        with pytest.raises(SuperionError, match=f"still in use .*pid {first.pid}.* after 0.5 s"):
            with locks.run_dir_lock(run, wait_s=0.5, log=said.append):
                pass
        assert 0.4 < time.monotonic() - t0 < 3 and "waiting" in said[0]
    finally:
        first.kill()
        first.wait()


@pytest.mark.parametrize("wait_s", [10.0, float("inf")])
def test_second_holder_waits_for_the_first(tmp_path, wait_s):
    run = tmp_path / "run"
    first = _hold(run, 1.5)
    said = []
    t0 = time.monotonic()
    with locks.run_dir_lock(run, wait_s=wait_s, log=said.append):
        waited = time.monotonic() - t0
        assert f"pid {os.getpid()}" in (run / locks.RUN_LOCK_NAME).read_text()
    first.wait()
    assert waited > 1.0  # the first one held it for 1.5 s after saying "locked"
    assert "in use by another superion md (pid" in said[0] and "waiting" in said[0]


def test_holder_killed_releases_the_lock(tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-c", HOLD, str(run), "60"], stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "locked"
    first.kill()  # kill -9: the kernel drops its lock
    first.wait()
    said = []
    with locks.run_dir_lock(run, log=said.append):  # taken at once, no --wait-for-lock needed
        pass
    assert len(said) == 1 and f"left by a killed superion md (pid {first.pid} on" in said[0]
    assert not (run / locks.RUN_LOCK_NAME).exists()  # a clean exit removes the lock file
    with locks.run_dir_lock(run, log=pytest.fail):  # so no note the next time
        pass


def test_cli_second_md_on_a_run_dir_fails_at_once(cu_file, tmp_path, capsys):
    from superion.cli import main

    run = tmp_path / "run"
    first = _hold(run, 30)
    try:
        argv = ["md", str(cu_file), "--potential", "none-needed", "--temperature-K", "300", "--steps", "10",
                "--out", str(run)]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {first.pid}" in err[0] and "Traceback" not in err[0]
    finally:
        first.kill()
        first.wait()


def test_negative_wait_is_refused(tmp_path):
    with pytest.raises(SuperionError, match="wait-for-lock"):
        with locks.run_dir_lock(tmp_path / "r", wait_s=-1):
            pass


def test_run_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(SuperionError, match="not a directory"):
        with locks.run_dir_lock(tmp_path / "f"):
            pass


def _fake_locks(dot: Path, n: int) -> list[Path]:
    (dot / "locks").mkdir(parents=True, exist_ok=True)
    out = []
    for kind in ("input", "output"):
        p = dot / "locks" / f"{n}.{kind}.lock"
        p.write_text("results/x\n")
        out.append(p)
    return out


def test_stale_lock_of_a_dead_process_is_removed(tmp_path, monkeypatch):
    dot = tmp_path / ".snakemake"
    files = _fake_locks(dot, 0)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    rec = {"host": socket.gethostname(), "boot_id": locks._boot_id(), "pid": dead.pid,
           "start_ticks": locks._start_ticks(dead.pid), "since": "t", "lock_files": [str(f.resolve()) for f in files]}
    dead.wait()
    (dot / locks.OWNERS_DIR).mkdir()
    (dot / locks.OWNERS_DIR / f"x.{dead.pid}.json").write_text(json.dumps(rec))
    said = []
    removed = locks.clear_stale_snakemake_locks(dot, log=said.append)
    assert sorted(removed) == sorted(str(f.resolve()) for f in files) and not any(f.exists() for f in files)
    assert len(said) == 1 and "removed the Snakemake lock left by a killed process" in said[0]
    assert not list((dot / locks.OWNERS_DIR).iterdir())


def test_lock_of_a_live_process_is_kept_quietly(tmp_path):
    dot = tmp_path / ".snakemake"
    files = _fake_locks(dot, 0)
    assert locks.record_snakemake_lock_owner(files, dot) is not None
    said = []
    assert locks.clear_stale_snakemake_locks(dot, log=said.append) == []
    assert all(f.exists() for f in files) and said == []
    locks.forget_snakemake_lock_owner(dot)
    assert not list((dot / locks.OWNERS_DIR).iterdir())


def test_unaccounted_and_other_host_locks_get_the_unlock_command(tmp_path):
    dot = tmp_path / ".snakemake"
    mine = _fake_locks(dot, 0)  # no record: e.g. made by an older version
    other = _fake_locks(dot, 1)
    (dot / locks.OWNERS_DIR).mkdir()
    rec = {"host": "elsewhere", "boot_id": "b", "pid": 1, "start_ticks": "1", "since": "t",
           "lock_files": [str(f.resolve()) for f in other]}
    (dot / locks.OWNERS_DIR / "elsewhere.1.json").write_text(json.dumps(rec))
    said = []
    cmd = "snakemake --profile workflow/profiles/slurm --configfile configs/paper.yaml --unlock"
    assert locks.clear_stale_snakemake_locks(dot, unlock_command=cmd, log=said.append) == []
    assert all(f.exists() for f in mine + other)
    assert len(said) == 2 and all(line.endswith(cmd) for line in said)
    assert "host elsewhere" in said[0] and "0.input.lock" in said[1]
