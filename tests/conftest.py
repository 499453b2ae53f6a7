"""Shared test fixtures: where ../shared lives, and the models folder made reachable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SUPERION_SHARED", REPO.parent / "shared")).resolve()

# The Makefile exports SUPERION_MODELS; a bare `pytest` from the repo gets the same default.
os.environ.setdefault("SUPERION_MODELS", str(SHARED / "models"))
# Keep torch/numba to one thread each in tests: deterministic and kind to a 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def models_dir(shared_dir: Path) -> Path:
    return shared_dir / "models"


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def cu_file(tmp_path_factory) -> Path:
    """32 Cu atoms (fcc 2x2x2, 7.22 A cube) as extxyz: the MD tests' input for ASE's EMT."""
    from ase.build import bulk
    from ase.io import write

    path = tmp_path_factory.mktemp("cu") / "cu.extxyz"
    write(path, bulk("Cu", cubic=True) * (2, 2, 2))
    return path


def kill_when_rows(cmd: list[str], env: dict, watch: Path, rows: int, timeout_s: float = 120.0) -> bool:
    """Start ``cmd``; SIGKILL it once ``watch`` (a CSV log) has more than ``rows`` lines.

    Returns True if it was killed, False if it finished (or the deadline passed) first."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, env=env)
    deadline = time.time() + timeout_s
    while proc.poll() is None and time.time() < deadline:
        if watch.exists() and watch.read_text().count("\n") > rows:
            break
        time.sleep(0.005)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return killed
