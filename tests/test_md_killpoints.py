"""Resume at every moment: SIGKILL at many named points (``superion.killpoints``), rerun, and the
run directory must equal an uninterrupted run's bitwise (trajectory, thermo log, checkpoint).

Each kill chain runs one run directory through several kills in a row (each rerun resuming what
the previous kill left, then dying at the next point), then a clean rerun. EMT on 32 Cu atoms
(``test_md_resume.EMT``) keeps a whole run below a second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from superion.killpoints import ENV
from superion.md import MDSettings, run_md

HERE = os.path.dirname(__file__)
# 20 equilibration + 40 production steps; frames every 5 production steps, checkpoints every 10.
SETTINGS = dict(temperature_K=600, steps=40, equilibration_steps=20, ensemble="npt", timestep_fs=2.0,
                save_every=5, checkpoint_every=10, seed=11, save_velocities=True, trajectory_dtype="float64")
SCRIPT = """
import sys
sys.path.insert(0, {here!r})
from test_md_resume import EMT
from superion.md import MDSettings, run_md
run_md(sys.argv[1], sys.argv[2], MDSettings(**{settings!r}), calculator=EMT(), log=lambda *a: None)
"""

# Kill points in the order one run passes them (phase:step; superion.killpoints lists the phases).
CHAINS = {
    "start-equilibration-boundary": [
        "observe:0",               # fresh start: storage and metadata made, no checkpoint yet
        "checkpoint-tmp:0",        # first checkpoint written under its temporary name only
        "checkpoint-written:0",    # right after the first checkpoint
        "observe:3",               # equilibration, resumed from the step-0 checkpoint
        "checkpoint-flushed:10",   # data flushed, checkpoint not written
        "observe:20",              # equilibration -> production boundary, before the first frame
        "frame:20",                # first production frame buffered, not on disk
        "h5-flush:20",             # inside the first trajectory flush
        "checkpoint-tmp:30",
        "complete:60",             # loop done, nothing marked
    ],
    "production-and-end": [
        "checkpoint:0",            # before anything of the first checkpoint
        "observe:9",
        "checkpoint:20",           # boundary checkpoint due, frame buffered
        "checkpoint-written:20",
        "frame:25",                # between a frame write and the next checkpoint
        "h5-flush:40",
        "observe:41",
        "checkpoint-flushed:60",   # final checkpoint: data flushed, checkpoint not written
        "checkpoint-written:60",   # after the final checkpoint, before complete
        "complete-metadata:60",    # metadata says complete, complete.json missing
    ],
}
N_KILL_POINTS = sum(len(v) for v in CHAINS.values())


@pytest.fixture(scope="module")
def reference(cu_file, tmp_path_factory) -> Path:
    ref = tmp_path_factory.mktemp("ref") / "run"
    run_md(cu_file, ref, MDSettings(**SETTINGS), calculator=_emt(), log=lambda *a: None)
    return ref


def _emt():
    sys.path.insert(0, HERE)
    from test_md_resume import EMT

    return EMT()


def _run(script: Path, cu_file: Path, run: Path, kill_at: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != ENV} | {"OMP_NUM_THREADS": "1"}
    if kill_at:
        env[ENV] = kill_at
    return subprocess.run([sys.executable, str(script), str(cu_file), str(run)], env=env, timeout=120).returncode


def _assert_same_run(ref: Path, run: Path) -> None:
    import h5py

    from superion.md.storage import read_checkpoint

    assert (run / "thermo.csv").read_bytes() == (ref / "thermo.csv").read_bytes()
    with h5py.File(ref / "trajectory.h5", "r") as a, h5py.File(run / "trajectory.h5", "r") as b:
        for name in ("position/step", "position/time", "position/value", "box/edges/value", "velocity/value"):
            x, y = a["particles/all/" + name][()], b["particles/all/" + name][()]
            assert x.shape == y.shape and x.tobytes() == y.tobytes(), name  # bitwise
    (sa, ia), (sb, ib) = read_checkpoint(ref / "checkpoint.npz"), read_checkpoint(run / "checkpoint.npz")
    assert ia == ib and sa.keys() == sb.keys()
    assert all(sa[k].tobytes() == sb[k].tobytes() for k in sa)
    done_a, done_b = (json.loads((d / "complete.json").read_text()) for d in (ref, run))
    assert {k: v for k, v in done_a.items() if k != "finished_utc"} == {k: v for k, v in done_b.items()
                                                                       if k != "finished_utc"}
    assert json.loads((run / "metadata.json").read_text())["status"] == "complete"
    # no temporaries of killed atomic writes left behind
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in ref.iterdir())


@pytest.mark.parametrize("chain", list(CHAINS))
def test_kill_at_every_point_then_resume_is_bitwise(chain, reference, cu_file, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(here=HERE, settings=SETTINGS))
    run = tmp_path / "run"
    for point in CHAINS[chain]:
        rc = _run(script, cu_file, run, point)
        assert rc == -9, f"{point}: the run was not killed there (exit {rc})"
        assert not (run / "complete.json").exists(), point
    assert _run(script, cu_file, run, None) == 0
    _assert_same_run(reference, run)


def test_kill_hook_is_inert_without_the_variable(reference):
    assert ENV not in os.environ  # the reference above ran in this process, unkilled
    assert (reference / "complete.json").exists()
