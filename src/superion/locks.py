"""Locks that make "rerun the same command" safe after ``kill -9``.

Two situations, both after the Snakemake process was killed (``kill -9``, a lost login node):

* Its jobs may still be running: local child processes are not killed with it, and SLURM jobs
  are not cancelled (snakemake-executor-plugin-slurm cancels them only on Ctrl-C/SIGTERM).
  The rerun submits the same MD run again. :func:`run_dir_lock` makes a second ``superion md``
  on a run directory fail at once naming the holder, or — with ``--wait-for-lock SECONDS``, which
  the workflow's rule passes — wait for the first one and then continue from what it left
  (complete: nothing to do; killed: resume from its checkpoint), so no run is simulated twice at
  once and none is lost. POSIX record locks (``fcntl.lockf``) work on local disks and on NFS.

* Its lock files stay in ``.snakemake/locks`` and the rerun stops with "Directory cannot be
  locked". The Snakefile records which lock files each Snakemake process made
  (:func:`record_snakemake_lock_owner`, from ``onstart``) and, before the next run,
  :func:`clear_stale_snakemake_locks` removes those of a process that no longer exists on this
  machine. Locks it cannot vouch for (another host, no record) are left alone, and the exact
  ``--unlock`` command is printed instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from superion.errors import SuperionError

RUN_LOCK_NAME = ".superion-md.lock"
OWNERS_DIR = "superion-lock-owners"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@contextlib.contextmanager
def run_dir_lock(run_dir: str | os.PathLike, wait_s: float = 0.0,
                 log: Callable[[str], None] = _stderr) -> Iterator[Path]:
    """Hold an exclusive lock on ``run_dir`` (created if missing) for the duration.

    When another process holds it: ``wait_s=0`` (the default of ``superion md``) raises
    SuperionError at once, naming the holder (pid, host, since); ``wait_s > 0`` (the workflow's
    ``--wait-for-lock``; ``math.inf`` = no limit) waits that many seconds, saying so in the log,
    and then raises. The kernel drops the lock of a killed holder, so a killed run never blocks
    its own resume; the lock file a killed holder left (a clean exit removes it) gets a note.
    """
    run = Path(run_dir)
    if run.exists() and not run.is_dir():
        raise SuperionError(f"output {run} exists and is not a directory; choose another --out")
    if not wait_s >= 0:
        raise SuperionError(f"--wait-for-lock {wait_s}: give seconds >= 0 (0: fail at once if the run is in use)")
    created = not run.exists()
    deadline = time.monotonic() + wait_s
    while True:
        fh = _open_lock_file(run)
        try:
            if _acquire(fh, run, wait_s, deadline, log):
                break
        except BaseException:
            fh.close()
            raise
        fh.close()  # the holder removed the file we waited on (see below): lock the new one
    with fh:
        stale = _stale_holder(fh)
        if stale:
            log(f"superion md: note: took over the lock of {run} left by a killed superion md ({stale}); "
                "continuing from what it left")
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {_utc()}\n")
        fh.flush()
        try:
            yield run
        finally:
            # A clean exit leaves no lock file (a file with a record means a killed holder). It is
            # unlinked while still locked; a waiter notices (_acquire) and locks a fresh file.
            (run / RUN_LOCK_NAME).unlink(missing_ok=True)
            if created and not any(run.iterdir()):
                run.rmdir()  # refused before writing anything (bad input): leave no run directory


def _open_lock_file(run: Path):
    try:
        run.mkdir(parents=True, exist_ok=True)
        return open(run / RUN_LOCK_NAME, "a+")
    except OSError as exc:
        raise SuperionError(f"cannot write the run directory {run} ({exc.strerror}); choose another --out "
                            "or fix its permissions") from None


def _acquire(fh, run: Path, wait_s: float, deadline: float, log) -> bool:
    """Lock ``fh`` (fail at once, or wait until ``deadline``); False if the file was unlinked
    meanwhile (the lock then protects nothing: the caller retries with the file now there)."""
    if not _try_lock(fh):
        holder = _holder(fh)
        if wait_s == 0:
            raise SuperionError(
                f"{run} is in use by another superion md ({holder}); wait for it to finish, stop it, or "
                "pass --wait-for-lock SECONDS to wait (never run two on one directory)")
        log(f"superion md: {run} is in use by another superion md ({holder}); waiting for it to finish "
            f"(up to {wait_s:g} s)")
        t0 = time.monotonic()
        if math.isinf(wait_s):
            fcntl.lockf(fh, fcntl.LOCK_EX)  # blocks: taken the moment the holder exits
        while not _try_lock(fh):
            if time.monotonic() >= deadline:
                raise SuperionError(f"{run} is still in use by another superion md ({_holder(fh)}) after "
                                    f"{wait_s:g} s; wait for it to finish or stop it, then rerun")
            time.sleep(min(1.0, max(0.05, (time.monotonic() - t0) / 10)))
        log(f"superion md: the other superion md on {run} ended after {time.monotonic() - t0:.0f} s; continuing")
    try:
        return os.stat(run / RUN_LOCK_NAME).st_ino == os.fstat(fh.fileno()).st_ino
    except FileNotFoundError:
        return False


def _try_lock(fh) -> bool:
    try:
        fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _holder(fh) -> str:
    fh.seek(0)
    return fh.read().strip() or "a process that has not written its pid yet"


def _stale_holder(fh) -> str | None:
    """The record a holder left without a clean exit (killed), read once we hold the lock."""
    fh.seek(0)
    rec = fh.read().strip()
    return rec if re.match(r"pid \d+ on \S+", rec) else None


# --------------------------------------------------------------------------------------
# Snakemake's directory lock after kill -9


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str | None:
    """Start time of process ``pid`` (clock ticks since boot), None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the "(comm)" field


def _owner_alive(rec: dict) -> bool | None:
    """True/False for a process of this machine; None when it cannot be told (another host)."""
    if rec.get("host") != socket.gethostname() or rec.get("boot_id") != _boot_id():
        return None if rec.get("host") != socket.gethostname() else False
    ticks = _start_ticks(int(rec.get("pid", -1)))
    return ticks is not None and ticks == rec.get("start_ticks")


def record_snakemake_lock_owner(lock_files: Iterable[str | os.PathLike], dot_snakemake: str | os.PathLike = ".snakemake") -> Path | None:
    """Note that this process holds ``lock_files`` (call once Snakemake has locked the directory)."""
    files = sorted(str(Path(f).resolve()) for f in lock_files)
    if not files:
        return None
    owners = Path(dot_snakemake) / OWNERS_DIR
    owners.mkdir(parents=True, exist_ok=True)
    rec = {"host": socket.gethostname(), "boot_id": _boot_id(), "pid": os.getpid(),
           "start_ticks": _start_ticks(os.getpid()), "since": _utc(), "lock_files": files,
           "command": shlex.join(sys.argv)}
    path = owners / f"{rec['host']}.{rec['pid']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=1))
    os.replace(tmp, path)
    return path


def forget_snakemake_lock_owner(dot_snakemake: str | os.PathLike = ".snakemake") -> None:
    """Drop this process's record (Snakemake removes its lock files itself on a normal exit)."""
    (Path(dot_snakemake) / OWNERS_DIR / f"{socket.gethostname()}.{os.getpid()}.json").unlink(missing_ok=True)


def clear_stale_snakemake_locks(dot_snakemake: str | os.PathLike = ".snakemake",
                                unlock_command: str | None = None,
                                log: Callable[[str], None] = _stderr) -> list[str]:
    """Remove the lock files of Snakemake processes of this machine that no longer exist.

    Returns the removed paths. For lock files that remain and belong to no live process of this
    machine (made on another host, or with no record), logs one line with the command that
    removes them (``unlock_command``, default: this command line plus ``--unlock``), to be used
    when no other Snakemake runs in this directory.
    """
    dot = Path(dot_snakemake)
    locks = dot / "locks"
    owners = dot / OWNERS_DIR
    cmd = unlock_command or (shlex.join(sys.argv) + " --unlock")
    removed: list[str] = []
    accounted: set[str] = set()
    for rec_path in sorted(owners.glob("*.json")) if owners.is_dir() else []:
        try:
            rec = json.loads(rec_path.read_text())
        except (OSError, json.JSONDecodeError):
            rec_path.unlink(missing_ok=True)
            continue
        files = [Path(f) for f in rec.get("lock_files", [])]
        held = [f for f in files if f.exists()]
        alive = _owner_alive(rec)
        if alive is False:
            for f in held:
                f.unlink(missing_ok=True)
                removed.append(str(f))
            rec_path.unlink(missing_ok=True)
            if held:
                log(f"superion: removed the Snakemake lock left by a killed process (pid {rec.get('pid')}, "
                    f"started {rec.get('since')}): {', '.join(f.name for f in held)}")
            continue
        if not held:  # its locks are gone (it ended normally): nothing to account for
            if alive is None:
                rec_path.unlink(missing_ok=True)
            continue
        accounted.update(str(f) for f in held)
        if alive is None:
            log(f"superion: {locks} holds locks of a snakemake on host {rec.get('host')} (pid {rec.get('pid')}, "
                f"since {rec.get('since')}); if it is not running any more, remove them with: {cmd}")
    left = [p for p in sorted(locks.glob("*.lock")) if str(p.resolve()) not in accounted] if locks.is_dir() else []
    if left:
        log(f"superion: {locks} holds locks of no snakemake known here ({', '.join(p.name for p in left)}); "
            f"if no other snakemake is running in this directory, remove them with: {cmd}")
    return removed
