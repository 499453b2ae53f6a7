"""Restart: kill -9 and rerun gives the uninterrupted trajectory bitwise; reruns are no-ops.

Uses ASE's EMT on 32 Cu atoms (run_md's ``calculator=`` hook) so a whole run takes seconds;
the resume machinery does not depend on the potential.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import kill_when_rows
from ase.calculators.calculator import all_changes
from ase.calculators.emt import EMT as _AseEMT

from superion.errors import SuperionError
from superion.md import MDSettings, run_md
from superion.md.storage import read_thermo
from superion.trajectory import open_trajectory

SCRIPT = """
import sys
sys.path.insert(0, {here!r})
from test_md_resume import EMT
from superion.md import MDSettings, run_md
s = MDSettings(**{settings!r})
run_md(sys.argv[1], sys.argv[2], s, calculator=EMT(), log=lambda *a: None)
"""


class EMT(_AseEMT):  # same class name as ASE's, so the settings hash ("custom:EMT") matches
    """EMT that raises KeyboardInterrupt after ``fail_after`` evaluations (an in-process kill)."""

    def __init__(self, fail_after: int | None = None):
        super().__init__()
        self.fail_after, self.calls = fail_after, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        # ASE's EMT keeps a Verlet list with a skin and sums tiny tails of pairs beyond the
        # cutoff, so its forces depend on when the list was last rebuilt: history. Rebuild every
        # call to make it a pure function of positions (as M3GNet, which builds its graph anew).
        return super().calculate(atoms, properties, all_changes)


def _same_run(a, b) -> None:
    assert (a / "thermo.csv").read_bytes() == (b / "thermo.csv").read_bytes()
    with open_trajectory(a) as x, open_trajectory(b) as y:
        assert x.n_frames == y.n_frames
        np.testing.assert_array_equal(x.steps, y.steps)
        np.testing.assert_array_equal(x.times_fs, y.times_fs)
        assert np.array_equal(x.positions(), y.positions())  # bitwise
        assert np.array_equal(x.cells(), y.cells())
        if x.velocities() is not None:
            assert np.array_equal(x.velocities(), y.velocities())
    assert (b / "complete.json").exists()


def _consecutive(run, settings) -> None:
    with open_trajectory(run) as tr:
        expect = np.arange(settings.equilibration_steps, settings.total_steps + 1, settings.save_every)
        np.testing.assert_array_equal(tr.steps, expect)  # no duplicate or missing frames
    t = read_thermo(run / "thermo.csv")
    np.testing.assert_array_equal(t["step"], np.arange(0, settings.total_steps + 1, settings.save_every))


def test_sigkill_and_resume_is_bitwise(cu_file, tmp_path):
    settings = dict(temperature_K=600, steps=200, equilibration_steps=40, ensemble="npt", timestep_fs=2.0,
                    save_every=5, checkpoint_every=20, seed=5, save_velocities=True, trajectory_dtype="float64")
    s = MDSettings(**settings)
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_md(cu_file, ref, s, calculator=EMT(), log=lambda *a: None)

    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(settings=settings, here=os.path.dirname(__file__)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    kills = 0
    for target_rows in (8, 9, 25):  # kill at various points, incl. right after a previous kill
        k = kill_when_rows([sys.executable, str(script), str(cu_file), str(killed)], env, killed / "thermo.csv", target_rows, 60)
        kills += k
        assert not (k and (killed / "complete.json").exists())  # a killed run is never marked complete
    assert kills >= 2, "the run finished before it could be killed; make it longer"
    meta = json.loads((killed / "metadata.json").read_text())
    assert meta["status"] == "running"  # kill -9 leaves no chance to mark anything
    res = subprocess.run([sys.executable, str(script), str(cu_file), str(killed)], env=env)
    assert res.returncode == 0
    _same_run(ref, killed)
    _consecutive(killed, s)


@pytest.mark.parametrize("ensemble", ["npt_iso", "nvt", "nve"])
def test_interrupt_and_resume_each_ensemble(cu_file, tmp_path, ensemble):
    s = MDSettings(temperature_K=500, steps=60, equilibration_steps=20, ensemble=ensemble, timestep_fs=2.0,
                   save_every=5, checkpoint_every=10, seed=9)
    run_md(cu_file, tmp_path / "ref", s, calculator=EMT(), log=lambda *a: None)
    with pytest.raises(KeyboardInterrupt):
        run_md(cu_file, tmp_path / "b", s, calculator=EMT(fail_after=47), log=lambda *a: None)
    assert json.loads((tmp_path / "b" / "metadata.json").read_text())["status"] == "interrupted"
    assert not (tmp_path / "b" / "complete.json").exists()
    res = run_md(cu_file, tmp_path / "b", s, calculator=EMT(), log=lambda *a: None)
    assert res.resumed_from_step is not None and 0 < res.resumed_from_step < s.total_steps
    _same_run(tmp_path / "ref", tmp_path / "b")
    _consecutive(tmp_path / "b", s)


def test_completed_rerun_is_noop_and_changed_settings_refused(cu_file, tmp_path):
    s = MDSettings(temperature_K=300, steps=40, ensemble="nvt", save_every=10, seed=1)
    run = tmp_path / "r"
    run_md(cu_file, run, s, calculator=EMT(), log=lambda *a: None)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.iterdir()}
    msgs = []
    res = run_md(cu_file, run, MDSettings(temperature_K=300, steps=40, ensemble="nvt", save_every=10, seed=1),
                 calculator=EMT(fail_after=0), log=msgs.append)  # would raise if it evaluated anything
    assert res.status == "already-complete" and "already complete" in msgs[0]
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.iterdir()}
    assert after == before
    for change in (dict(seed=2), dict(steps=50), dict(temperature_K=310), dict(ensemble="npt")):
        kw = dict(temperature_K=300, steps=40, ensemble="nvt", save_every=10, seed=1) | change
        with pytest.raises(SuperionError, match="different settings"):
            run_md(cu_file, run, MDSettings(**kw), calculator=EMT(), log=lambda *a: None)
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.iterdir()} == before


def test_cli_completed_rerun_prints_noop(shared_dir, tmp_path, capsys):
    """Through the CLI with the real model: the second call returns 0 and says nothing was done."""
    from superion.cli import main

    cif = shared_dir / "structures/approximants/NaBH4_P-421c-approx.cif"
    argv = ["md", str(cif), "--potential", "M3GNet-r2SCAN-NaBH", "--temperature-K", "300", "--steps", "4",
            "--save-every", "2", "--ensemble", "npt", "--threads", "1", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    assert (tmp_path / "r" / "complete.json").exists()
    capsys.readouterr()
    assert main(argv) == 0
    assert "already complete" in capsys.readouterr().out
    assert main(argv[:-2] + ["--seed", "3", "--out", str(tmp_path / "r")]) == 2


def test_m3gnet_resume_is_bitwise(shared_dir, tmp_path, monkeypatch):
    """The real model is a pure function of positions (graph rebuilt each call), so an
    interrupted-and-resumed M3GNet NPT run equals the uninterrupted one bitwise (fixed threads)."""
    import superion.md as md

    cif = shared_dir / "structures/approximants/NaBH4_P-421c-approx.cif"
    s = dict(temperature_K=400, steps=12, equilibration_steps=4, ensemble="npt", save_every=2, checkpoint_every=4,
             seed=3, trajectory_dtype="float64")
    kw = dict(potential="M3GNet-r2SCAN-NaBH", threads=1, device="cpu", log=lambda *a: None)
    run_md(cif, tmp_path / "ref", MDSettings(**s), **kw)

    real_step, calls = md.AseEngine.step, {"n": 0}

    def dying_step(self):
        calls["n"] += 1
        if calls["n"] > 10:
            raise KeyboardInterrupt("simulated kill")
        real_step(self)

    monkeypatch.setattr(md.AseEngine, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run_md(cif, tmp_path / "b", MDSettings(**s), **kw)
    monkeypatch.setattr(md.AseEngine, "step", real_step)
    res = run_md(cif, tmp_path / "b", MDSettings(**s), **kw)
    assert res.resumed_from_step == 8
    _same_run(tmp_path / "ref", tmp_path / "b")


@pytest.mark.parametrize("equilibration_steps", [0, 10])
def test_resume_from_the_first_checkpoint(cu_file, tmp_path, equilibration_steps):
    """Killed before the second checkpoint: the rerun resumes from the step-0 checkpoint and must
    not record step 0 a second time (a doubled thermo row; with no equilibration a doubled frame)."""
    s = MDSettings(temperature_K=500, steps=40, equilibration_steps=equilibration_steps, ensemble="npt",
                   timestep_fs=2.0, save_every=5, checkpoint_every=20, seed=4)
    run_md(cu_file, tmp_path / "ref", s, calculator=EMT(), log=lambda *a: None)
    with pytest.raises(KeyboardInterrupt):
        run_md(cu_file, tmp_path / "b", s, calculator=EMT(fail_after=8), log=lambda *a: None)
    res = run_md(cu_file, tmp_path / "b", s, calculator=EMT(), log=lambda *a: None)
    assert res.resumed_from_step == 0
    _same_run(tmp_path / "ref", tmp_path / "b")
    _consecutive(tmp_path / "b", s)
