"""MD observers and the step loop, each alone: fake replicas, fake sinks, a fake clock.

No potential is loaded: a replica is a small object with the view ``superion.md.engine``
documents (positions, momenta, cell, energies, state).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from superion.errors import SimulationError
from superion.md import MDSettings, StabilityGuard
from superion.md.engine import KineticTemperature
from superion.md.loop import StepLoop
from superion.md.observers import (CheckpointRecorder, FrameRecorder, ProgressReporter, ThermoRecorder, close_pairs,
                                   format_duration)
from superion.md.storage import read_checkpoint


class FakeReplica:
    """The replica view with fixed numbers: 4 atoms in a 10 A cube, far apart."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.masses = np.array([1.008, 10.81, 22.99, 1.008])
        self.symbols = ["H", "B", "Na", "H"]
        self._pos = np.array([[0.0, 0, 0], [5, 0, 0], [0, 5, 0], [0, 0, 5]]) + 0.1
        self._mom = rng.standard_normal((4, 3)) * 0.05
        self._cell = np.diag([10.0, 11.0, 12.0])
        self._forces = np.zeros((4, 3))
        self.state_calls = 0

    def positions(self):
        return self._pos

    def momenta(self):
        return self._mom

    def cell(self):
        return self._cell

    def forces(self):
        return self._forces

    def potential_energy(self):
        return -1.5

    def kinetic_energy(self):
        return 0.25

    def pressure_bar(self):
        return 123.0

    def volume(self):
        return float(np.linalg.det(self._cell))

    def conserved_energy(self):
        return -1.0

    def get_state(self):
        self.state_calls += 1
        return {"atoms.positions": self._pos.copy(), "atoms.momenta": self._mom.copy(), "_eta": np.arange(3.0)}


def settings(**kw) -> MDSettings:
    base = dict(temperature_K=300.0, steps=100, save_every=10, guard_every=10)
    return MDSettings(**(base | kw)).validate()


# ----------------------------------------------------------------------------- temperature
def test_kinetic_temperature_matches_ase():
    from ase import Atoms

    rep = FakeReplica()
    atoms = Atoms(rep.symbols, positions=rep.positions(), masses=rep.masses, momenta=rep.momenta())
    assert KineticTemperature(rep.masses)(rep.momenta()) == pytest.approx(atoms.get_temperature(), rel=1e-12)


# ----------------------------------------------------------------------------- thermo
def test_thermo_recorder_rows_and_schedule():
    rows = []

    class Sink:
        def append(self, row):
            rows.append(row)

    rep = FakeReplica()
    rec = ThermoRecorder(Sink(), interval=5, timestep_fs=2.0, production_start=10, masses_amu=rep.masses)
    assert [s for s in range(0, 21) if rec.due(s)] == [0, 5, 10, 15, 20]
    for s in (5, 10):
        rec(s, rep)
    from superion.md.storage import THERMO_COLUMNS

    assert set(rows[0]) == set(THERMO_COLUMNS)
    assert [r["phase"] for r in rows] == ["equilibration", "production"]
    r = rows[1]
    assert r["step"] == 10 and r["time_fs"] == 20.0
    assert (r["a_A"], r["b_A"], r["c_A"]) == (10.0, 11.0, 12.0)
    assert r["volume_A3"] == pytest.approx(1320.0) and r["P_bar"] == 123.0
    assert (r["epot_eV"], r["ekin_eV"], r["conserved_eV"]) == (-1.5, 0.25, -1.0)
    # the guard and the thermo log use the same temperature, to the last bit
    assert r["T_K"] == StabilityGuard(settings(), rep.masses).temperature(rep.momenta())


# ----------------------------------------------------------------------------- frames
def test_frame_recorder_production_only_and_velocities():
    from ase import units

    calls = []

    class Writer:
        def append(self, step, time_fs, positions, cell, velocities):
            calls.append((step, time_fs, positions.copy(), cell.copy(), velocities))

    rep = FakeReplica()
    rec = FrameRecorder(Writer(), interval=5, timestep_fs=0.5, production_start=10, masses_amu=rep.masses,
                        save_velocities=True)
    assert [s for s in range(0, 26) if rec.due(s)] == [10, 15, 20, 25]
    rec(10, rep)
    step, t, pos, cell, vel = calls[0]
    assert (step, t) == (10, 5.0)
    np.testing.assert_array_equal(pos, rep.positions())
    np.testing.assert_array_equal(cell, rep.cell())
    np.testing.assert_allclose(vel, rep.momenta() / rep.masses[:, None] * units.fs)  # A/fs
    FrameRecorder(Writer(), interval=5, timestep_fs=0.5, production_start=0, masses_amu=rep.masses,
                  save_velocities=False)(0, rep)
    assert calls[1][4] is None


# ----------------------------------------------------------------------------- checkpoint
def test_checkpoint_recorder_flushes_data_before_writing(tmp_path):
    path = tmp_path / "checkpoint.npz"
    events = []

    class Sink:
        def __init__(self, name):
            self.name, self.n_frames, self.n_rows = name, 3, 7

        def flush(self):
            # the checkpoint of this step must not exist yet when the data is flushed
            events.append((self.name, path.exists() and read_checkpoint(path)[1]["step"]))

    rep = FakeReplica()
    rec = CheckpointRecorder(path, Sink("frames"), Sink("thermo"), interval=20, final_step=50, settings_hash="abc")
    assert [s for s in range(0, 61) if rec.due(s)] == [0, 20, 40, 50, 60]
    rec(20, rep)
    rec(40, rep)
    assert events == [("frames", False), ("thermo", False), ("frames", 20), ("thermo", 20)]
    state, info = read_checkpoint(path)
    assert info == {"step": 40, "n_frames": 3, "n_thermo_rows": 7, "settings_hash": "abc", "format": 1}
    np.testing.assert_array_equal(state["atoms.positions"], rep.positions())
    np.testing.assert_array_equal(state["_eta"], np.arange(3.0))
    assert not list(tmp_path.glob("*.tmp*"))  # atomic: no temporary left


# ----------------------------------------------------------------------------- guard
def test_guard_temperature_and_nan():
    rep = FakeReplica()
    T = KineticTemperature(rep.masses)(rep.momenta())
    guard = StabilityGuard(settings(temperature_K=T / 2.5, max_temperature_factor=3.0), rep.masses)
    guard(1, rep)  # 2.5 x target < 3 x target: fine
    hot = StabilityGuard(settings(temperature_K=T / 3.5, max_temperature_factor=3.0), rep.masses)
    with pytest.raises(SimulationError, match=r"^step 7: temperature \d+ K exceeds 3 x target"):
        hot(7, rep)
    for attr, msg in (("_mom", "velocities became NaN"), ("_pos", "positions became NaN"),
                      ("_forces", "forces became NaN")):
        bad = FakeReplica()
        getattr(bad, attr)[1, 2] = np.nan
        with pytest.raises(SimulationError, match=f"step 3: {msg}"):
            guard(3, bad)


def test_guard_overlap_every_guard_every_steps():
    rep = FakeReplica()
    rep._pos[1] = rep._pos[0] + [0.2, 0.1, 0]  # atoms 0 (H) and 1 (B) 0.22 A apart
    guard = StabilityGuard(settings(guard_every=10, min_distance_A=0.5), rep.masses)
    guard(3, rep)  # only the cheap checks on this step
    with pytest.raises(SimulationError, match=r"step 10: atoms (0 \(H\) and 1 \(B\)|1 \(B\) and 0 \(H\)) are 0.22 A apart"):
        guard(10, rep)
    StabilityGuard(settings(min_distance_A=0.0), rep.masses)(10, rep)  # 0 switches it off
    # across the periodic boundary too
    far = FakeReplica()
    far._pos[1] = far._pos[0] + [9.8, 0, 0]
    with pytest.raises(SimulationError, match="0.20 A apart"):
        guard(0, far)


def test_guard_explains_a_failing_step():
    rep = FakeReplica()
    guard = StabilityGuard(settings(), rep.masses)
    guard.on_step_error(5, rep, RuntimeError("calculator failed"))  # sane state: no opinion
    rep._mom[:] = np.inf
    with pytest.raises(SimulationError, match="step 5: velocities became NaN/inf"):
        guard.on_step_error(5, rep, RuntimeError("calculator failed"))


def test_close_pairs_matches_ase_in_a_triclinic_cell():
    from ase.neighborlist import primitive_neighbor_list

    rng = np.random.default_rng(3)
    cell = np.array([[6.0, 0, 0], [2.5, 5.5, 0], [1.0, 1.5, 7.0]])
    pos = rng.random((40, 3)) @ cell + rng.normal(scale=8.0, size=(40, 3))  # unwrapped, outside the cell
    i, j, d = close_pairs(pos, cell, 2.0)
    ia, ja, da = primitive_neighbor_list("ijd", (True, True, True), cell, pos, 2.0)
    assert len(d) > 10
    assert sorted(zip(i, j, np.round(d, 9))) == sorted(zip(ia, ja, np.round(da, 9)))


# ----------------------------------------------------------------------------- loop
class Recorder:
    def __init__(self, name, interval, log, fail_at=None):
        self.name, self.interval, self.log, self.fail_at = name, interval, log, fail_at

    def due(self, step):
        return step % self.interval == 0

    def __call__(self, step, replica):
        self.log.append((self.name, step, replica))
        if step == self.fail_at:
            raise SimulationError(f"step {step}: {self.name} says stop")


class FakeEngine:
    def __init__(self, log, fail_step=None):
        self.log, self.n, self.fail_step = log, 0, fail_step

    def evaluate(self):
        self.log.append(("evaluate", self.n, None))

    def step(self):
        self.n += 1
        if self.n == self.fail_step:
            raise RuntimeError("calculator blew up")
        self.log.append(("step", self.n, None))


def test_loop_fresh_calls_observers_in_attach_order():
    log = []
    eng = FakeEngine(log)
    loop = StepLoop(eng, [Recorder("a", 2, log), Recorder("b", 1, log)])
    loop.run(0, 3)
    assert [(n, s) for n, s, _ in log] == [
        ("evaluate", 0), ("a", 0), ("b", 0),
        ("step", 1), ("b", 1), ("step", 2), ("a", 2), ("b", 2), ("step", 3), ("b", 3)]
    assert all(r is eng for n, _, r in log if n in "ab")  # the engine is its own replica view
    assert loop.step == 3 and loop.loop_s >= 0


def test_loop_resume_starts_after_the_checkpoint_step_and_replicas_are_passed():
    log = []
    eng = FakeEngine(log)
    eng.n = 4
    loop = StepLoop(eng)
    r1, r2 = object(), object()  # a batched engine attaches each replica's observers with its view
    loop.attach(Recorder("a", 1, log), replica=r1)
    loop.attach(Recorder("b", 1, log), replica=r2)
    loop.run(4, 5)
    assert log == [("step", 5, None), ("a", 5, r1), ("b", 5, r2)]  # no evaluate, no step-4 observation


def test_loop_stops_on_observer_error_and_reports_step():
    log = []
    loop = StepLoop(FakeEngine(log), [Recorder("guard", 1, log, fail_at=3), Recorder("later", 1, log)])
    with pytest.raises(SimulationError, match="step 3: guard says stop"):
        loop.run(0, 10)
    assert loop.step == 3 and ("later", 3, loop.engine) not in log


def test_loop_step_error_hooks():
    log = []

    class Explainer(Recorder):
        def on_step_error(self, step, replica, exc):
            log.append(("hook", step, str(exc)))
            if self.fail_at is not None:
                raise SimulationError(f"step {step}: exploded") from exc

    loop = StepLoop(FakeEngine(log, fail_step=2), [Explainer("x", 1, log)])
    with pytest.raises(RuntimeError, match="calculator blew up"):  # nobody explains: original error
        loop.run(0, 5)
    assert ("hook", 2, "calculator blew up") in log and loop.step == 2
    loop = StepLoop(FakeEngine([], fail_step=2), [Explainer("x", 1, log, fail_at=-1)])
    with pytest.raises(SimulationError, match="step 2: exploded"):
        loop.run(0, 5)


# ----------------------------------------------------------------------------- progress
class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def reporter(lines, clock, **kw):
    args = dict(total_steps=1_000_000, start_step=0, timestep_fs=1.0)
    args.update({k: kw.pop(k) for k in list(kw) if k in args})
    return ProgressReporter(args["total_steps"], args["start_step"], args["timestep_fs"], write=lines.append,
                            tty=False, clock=clock, stamp=lambda: "2026-01-01T00:00:00Z", **kw)


def test_progress_lines_on_wall_time_with_speed_and_eta():
    lines, clock = [], FakeClock()
    rep = reporter(lines, clock, every_s=300)
    assert lines == ["superion md: [2026-01-01T00:00:00Z] starting at step 0/1000000 (0 of 1000 ps); "
                     "progress every 300 s"]
    # 8 steps per second (exact in binary): 8 fs/s = 0.6912 ns/day; the rest takes 124700 s
    for step in range(1, 2401):
        clock.t += 0.125
        rep(step)
    assert len(lines) == 2  # exactly 300 s at step 2400
    m = re.fullmatch(r"superion md: \[.*\] step 2400/1000000 \(0\.2 %\), 2\.4 of 1000 ps, ([\d.]+) ns/day, "
                     r"ETA (\S+)", lines[1])
    assert m, lines[1]
    assert float(m.group(1)) == pytest.approx(0.6912, rel=1e-3)
    assert m.group(2) == format_duration(997_600 / 8) == "1d10h"
    for step in range(2401, 4000):
        clock.t += 0.125
        rep(step)
    assert len(lines) == 2  # nothing new before another 300 s


def test_progress_start_end_and_resume():
    lines, clock = [], FakeClock()
    rep = reporter(lines, clock, total_steps=200, start_step=100, timestep_fs=2.0, every_s=math.inf)
    assert "starting at step 100/200 (0.2 of 0.4 ps)" in lines[0] and "every" not in lines[0]
    for step in range(101, 201):
        clock.t += 0.5
        rep(step)
    assert len(lines) == 2
    # 100 steps in 50 s: 2 steps/s x 2 fs = 4 fs/s = 0.3456 ns/day
    assert lines[1].endswith("finished step 200/200 (0.4 ps) in 50s, 0.346 ns/day")
    silent = []
    rep = reporter(silent, clock, every_s=None)
    rep(1_000_000)
    assert silent == []


def test_progress_bar_on_a_terminal_writes_no_lines(capsys):
    lines = []
    rep = ProgressReporter(50, 10, 1.0, write=lines.append, tty=True, every_s=1e-9)
    for step in range(11, 51):
        rep(step)
    assert rep.bar.n == 50
    rep.close()
    assert lines == [] and "md" in capsys.readouterr().err


def test_format_duration():
    assert [format_duration(s) for s in (0.4, 59, 61, 3599, 3600 * 4 + 300, 86400 * 3 + 3600 * 4)] == [
        "0s", "59s", "1m01s", "59m59s", "4h05m", "3d04h"]
