"""Locks that make "rerun the same command" safe after ``kill -9``.

Two situations, both after the Snakemake process was killed (``kill -9``, a lost login node):

* Its jobs may still be running: local child processes are not killed with it, and SLURM jobs
  are not cancelled (snakemake-executor-plugin-slurm cancels them only on Ctrl-C/SIGTERM).
  The rerun submits the same MD run again. :func:`run_dir_lock` makes the second ``superion md``
  on a run directory wait for the first one and then continue from what it left (complete:
  nothing to do; killed: resume from its checkpoint), so no run is simulated twice at once
  and none is lost. POSIX record locks (``fcntl.lockf``) work on local disks and on NFS.

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
import os
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
def run_dir_lock(run_dir: str | os.PathLike, log: Callable[[str], None] = _stderr) -> Iterator[Path]:
    """Hold an exclusive lock on ``run_dir`` (created if missing) for the duration.

    A second holder waits (and says so in its log) until the first one exits, whichever way.
    """
    run = Path(run_dir)
    if run.exists() and not run.is_dir():
        raise SuperionError(f"output {run} exists and is not a directory; choose another --out")
    run.mkdir(parents=True, exist_ok=True)
    with open(run / RUN_LOCK_NAME, "a+") as fh:
        try:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown process"
            log(f"superion md: {run} is in use by another superion md ({holder}); waiting for it to finish")
            t0 = time.monotonic()
            fcntl.lockf(fh, fcntl.LOCK_EX)
            log(f"superion md: the other superion md on {run} ended after {time.monotonic() - t0:.0f} s; continuing")
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {_utc()}\n")
        fh.flush()
        yield run


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
