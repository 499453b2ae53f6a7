"""Trajectory storage (H5MD-style writer, checkpoint, thermo log) and the reader API."""

from __future__ import annotations

import numpy as np
import pytest

from superion.structures.clusters import ClusterLabels
from superion.errors import SuperionError
from superion.md.storage import ThermoLog, read_checkpoint, read_thermo, write_checkpoint
from superion.trajectory import H5TrajectoryWriter, open_trajectory

N = 5


def _frames(n_frames: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    pos = rng.normal(size=(n_frames, N, 3)) * 10
    cells = np.eye(3)[None] * (5 + rng.random((n_frames, 1, 1)))
    vel = rng.normal(size=(n_frames, N, 3))
    return pos, cells, vel


def _write(path, n_frames: int, dtype="float64", velocities=True):
    pos, cells, vel = _frames(n_frames)
    labels = ClusterLabels(np.array([-1, 0, 0, 1, 1]), ["BH", "BH"])
    w = H5TrajectoryWriter.create(path, symbols=["Na", "B", "H", "B", "H"], numbers=np.array([11, 5, 1, 5, 1]),
                                  masses_amu=np.array([23.0, 10.8, 1.0, 10.8, 1.0]), metadata={"x": 1},
                                  labels=labels, temperature_K=500.0, save_velocities=velocities, dtype=dtype)
    for i in range(n_frames):
        w.append(100 + 10 * i, 1000.0 + 10.0 * i, pos[i], cells[i], vel[i] if velocities else None)
    w.flush()
    w.close()
    return pos, cells, vel


def test_h5_roundtrip_and_slicing(tmp_path):
    path = tmp_path / "t.h5"
    pos, cells, vel = _write(path, 7)
    with open_trajectory(path) as tr:
        assert tr.n_frames == 7 and tr.n_atoms == N
        assert tr.symbols == ["Na", "B", "H", "B", "H"]
        np.testing.assert_array_equal(tr.masses, [23.0, 10.8, 1.0, 10.8, 1.0])
        np.testing.assert_array_equal(tr.times_fs, 1000.0 + 10.0 * np.arange(7))
        assert tr.temperature_K == 500.0 and tr.wrapped is False
        assert tr.labels.types == ["BH", "BH"] and tr.metadata == {"x": 1}
        np.testing.assert_array_equal(tr.positions(), pos)
        np.testing.assert_array_equal(tr.positions(slice(2, 6, 2), [0, 3]), pos[2:6:2][:, [0, 3]])
        np.testing.assert_array_equal(tr.positions(3), pos[3:4])
        np.testing.assert_array_equal(tr.positions([5, 1, 5]), pos[[5, 1, 5]])  # unsorted, repeated
        np.testing.assert_array_equal(tr.cells(slice(-2, None)), cells[-2:])
        np.testing.assert_array_equal(tr.velocities(slice(0, 3)), vel[:3])
        assert tr.positions(slice(0, 2)).dtype == np.float64


def test_h5md_layout(tmp_path):
    import h5py

    path = tmp_path / "t.h5"
    _write(path, 3, dtype="float32", velocities=False)
    with h5py.File(path, "r") as f:
        assert list(f["h5md"].attrs["version"]) == [1, 1]
        g = f["particles/all"]
        assert g["position/value"].dtype == np.float32 and g["position/value"].shape == (3, N, 3)
        assert g["box/edges/value"].shape == (3, 3, 3)
        assert g["position/value"].maxshape[0] is None  # appendable
        assert g["box/edges/step"].id == g["position/step"].id  # shared time axis (hard link)
        assert "velocity" not in g
        assert g["position/time"].attrs["unit"] == "fs"


def test_open_append_truncates(tmp_path):
    path = tmp_path / "t.h5"
    pos, cells, vel = _write(path, 6)
    w = H5TrajectoryWriter.open_append(path, keep_frames=4)
    assert w.n_frames == 4
    w.append(999, 9.0, pos[0] + 1, cells[0], vel[0])
    w.close()
    with open_trajectory(path) as tr:
        assert tr.n_frames == 5
        np.testing.assert_array_equal(tr.positions(slice(0, 4)), pos[:4])
        np.testing.assert_array_equal(tr.positions(4)[0], pos[0] + 1)
        assert tr.steps[-1] == 999
    with pytest.raises(SuperionError, match="expects 9"):
        H5TrajectoryWriter.open_append(path, keep_frames=9)


def test_checkpoint_roundtrip(tmp_path):
    state = {"_q": np.random.default_rng(1).normal(size=(4, 3)), "thermostat._eta": np.array([0.1, 0.2, 0.3]),
             "_eps": np.array(0.25)}
    write_checkpoint(tmp_path / "c.npz", state, {"step": 40, "n_frames": 3})
    got, info = read_checkpoint(tmp_path / "c.npz")
    assert info == {"step": 40, "n_frames": 3}
    for k, v in state.items():
        np.testing.assert_array_equal(got[k], v)
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary left behind
    (tmp_path / "bad.npz").write_text("garbage")
    with pytest.raises(SuperionError, match="bad.npz is damaged or not an .npz file"):
        read_checkpoint(tmp_path / "bad.npz")


def test_thermo_log_truncation(tmp_path):
    path = tmp_path / "thermo.csv"
    row = dict(step=0, time_fs=0.0, phase="equilibration", T_K=1.0, P_bar=2.0, volume_A3=3.0, a_A=1.0, b_A=1.0,
               c_A=1.0, epot_eV=-1.5, ekin_eV=0.1, conserved_eV=-1.4)
    log = ThermoLog(path)
    for s in range(5):
        log.append({**row, "step": s})
    log.flush()
    log.close()
    with open(path, "a") as fh:
        fh.write("5,5.0,produc")  # a row cut by kill -9
    log = ThermoLog(path, keep_rows=3)
    log.append({**row, "step": 3, "phase": "production"})
    log.close()
    t = read_thermo(path)
    np.testing.assert_array_equal(t["step"], [0, 1, 2, 3])
    assert list(t["phase"]) == ["equilibration"] * 3 + ["production"]
    with pytest.raises(SuperionError):
        ThermoLog(path, keep_rows=10)


def _ase_frames(n=4, with_time=True):
    from ase.build import bulk

    frames = []
    for i in range(n):
        a = bulk("Cu", cubic=True)
        a.positions += 0.01 * i
        if with_time:
            a.info["time_fs"] = 5.0 * i
        frames.append(a)
    return frames


@pytest.mark.parametrize("suffix", [".extxyz", ".traj"])
def test_ase_reader(tmp_path, suffix):
    from ase.io import write

    frames = _ase_frames()
    path = tmp_path / f"t{suffix}"
    write(path, frames)
    with open_trajectory(path) as tr:
        assert tr.n_frames == 4 and tr.wrapped is True and tr.symbols == ["Cu"] * 4
        np.testing.assert_allclose(tr.times_fs, [0, 5, 10, 15])
        np.testing.assert_allclose(tr.positions(slice(1, 3), [0]), np.array([f.positions[[0]] for f in frames[1:3]]))
        np.testing.assert_allclose(tr.cells([3, 0]), np.array([frames[3].cell.array, frames[0].cell.array]))
    with open_trajectory(path, wrapped=False, frame_interval_fs=1.5) as tr:
        assert tr.wrapped is False
        np.testing.assert_allclose(tr.times_fs, [0, 1.5, 3, 4.5])  # explicit interval wins


def test_ase_reader_needs_times(tmp_path):
    from ase.io import write

    path = tmp_path / "t.extxyz"
    write(path, _ase_frames(with_time=False))
    with pytest.raises(SuperionError, match="frame interval"):
        open_trajectory(path)
    with open_trajectory(path, frame_interval_fs=2.0) as tr:
        np.testing.assert_allclose(tr.times_fs, [0, 2, 4, 6])


def test_open_trajectory_errors(tmp_path):
    with pytest.raises(SuperionError, match="not found"):
        open_trajectory(tmp_path / "missing.h5")
    with pytest.raises(SuperionError, match="run directory"):
        open_trajectory(tmp_path)
    (tmp_path / "x.h5").write_text("not hdf5")
    with pytest.raises(SuperionError, match="HDF5"):
        open_trajectory(tmp_path / "x.h5")


# ----------------------------------------------------------------------------- frame interval
def test_frame_interval_of_h5_and_explicit_interval_must_agree(tmp_path):
    path = tmp_path / "t.h5"
    _write(path, 5)  # times 1000, 1010, ... fs
    with open_trajectory(path) as tr:
        assert tr.frame_interval_fs == 10.0
    with open_trajectory(path, frame_interval_fs=10.0) as tr:  # agrees: accepted
        assert tr.frame_interval_fs == 10.0
        np.testing.assert_array_equal(tr.times_fs, 1000.0 + 10.0 * np.arange(5))  # stored times kept
    with pytest.raises(SuperionError, match="contradicts the 10 fs"):
        open_trajectory(path, frame_interval_fs=20.0)
    for bad in (0.0, -1.0):
        with pytest.raises(SuperionError, match="positive time"):
            open_trajectory(path, frame_interval_fs=bad)
    import h5py

    with h5py.File(path, "r+") as f:
        f["particles/all/position/time"][3] += 4.0
    with pytest.raises(SuperionError, match="not evenly spaced, and --frame-interval-fs does not override"):
        open_trajectory(path, frame_interval_fs=10.0)
    with open_trajectory(path) as tr, pytest.raises(SuperionError, match="not evenly spaced and increasing"):
        tr.frame_interval_fs


def test_frame_interval_of_ase_file_is_the_explicit_one(tmp_path):
    from ase.io import write

    path = tmp_path / "t.extxyz"
    write(path, _ase_frames())  # stored 5 fs apart
    with open_trajectory(path) as tr:
        assert tr.frame_interval_fs == 5.0
    with open_trajectory(path, frame_interval_fs=1.5) as tr:
        assert tr.frame_interval_fs == 1.5


def test_uneven_or_too_few_frame_times_are_clear_errors():
    from superion.trajectory import ArrayTrajectory

    pos = np.zeros((4, 1, 3))
    tr = ArrayTrajectory(pos, np.eye(3) * 5, [0.0, 1.0, 2.0, 4.0], ["Na"], [23.0])
    with pytest.raises(SuperionError, match="not evenly spaced"):
        tr.frame_interval_fs
    with pytest.raises(SuperionError, match="at least 2 frames"):
        ArrayTrajectory(pos[:1], np.eye(3) * 5, [0.0], ["Na"], [23.0]).frame_interval_fs
    assert ArrayTrajectory(pos, np.eye(3) * 5, [0.0, 2.0, 4.0, 6.0], ["Na"], [23.0]).frame_interval_fs == 2.0


# ----------------------------------------------------------------------------- in-memory reader
def test_array_trajectory_is_a_reader():
    from superion.trajectory import ArrayTrajectory, TrajectoryReader

    pos, cells, _ = _frames(6)
    tr = ArrayTrajectory(pos, cells, np.arange(6) * 2.0, ["Na", "B", "H", "B", "H"], np.ones(N), wrapped=False,
                         temperature_K=450.0)
    assert isinstance(tr, TrajectoryReader)
    with tr as same:  # a context manager like every reader
        assert same is tr and tr.n_frames == 6 and tr.n_atoms == N
        np.testing.assert_array_equal(tr.steps, np.arange(6))
        np.testing.assert_array_equal(tr.positions(3), pos[3:4])  # an int gives one frame, (1, N, 3)
        np.testing.assert_array_equal(tr.positions([5, 1, 5], [0, 2]), pos[[5, 1, 5]][:, [0, 2]])
        np.testing.assert_array_equal(tr.cells(slice(4, None)), cells[4:])
        assert tr.velocities() is None and tr.wrapped is False and tr.temperature_K == 450.0
        got = tr.positions(slice(0, 2))
        got[:] = 0.0  # a copy: the reader's arrays are untouched
        assert np.any(tr.positions(slice(0, 2)) != 0.0)
    one_cell = ArrayTrajectory(pos, np.eye(3) * 7, np.arange(6.0), ["Na"] * N, np.ones(N))
    np.testing.assert_array_equal(one_cell.cells(), np.broadcast_to(np.eye(3) * 7, (6, 3, 3)))


@pytest.mark.parametrize("bad", ["times", "masses", "symbols", "cells"])
def test_array_trajectory_refuses_arrays_that_do_not_fit(bad):
    from superion.trajectory import ArrayTrajectory

    pos, cells, _ = _frames(4)
    args = dict(positions_A=pos, cells_A=cells, times_fs=np.arange(4.0), symbols=["Na"] * N, masses=np.ones(N))
    args[{"times": "times_fs", "masses": "masses", "symbols": "symbols", "cells": "cells_A"}[bad]] = {
        "times": np.arange(3.0), "masses": np.ones(N + 1), "symbols": ["Na"] * (N - 1), "cells": cells[:3]}[bad]
    with pytest.raises(SuperionError, match="do not fit"):
        ArrayTrajectory(**args)


# ----------------------------------------------------------------------------- extxyz export
def test_export_extxyz_reads_back_as_the_same_trajectory(tmp_path):
    from superion.trajectory import export_extxyz

    run = tmp_path / "run"
    run.mkdir()
    pos, cells, vel = _write(run / "trajectory.h5", 7)
    res = export_extxyz(run, tmp_path / "t.extxyz", every=2, chunk=3)
    assert res.n_frames == 4 and res.complete is False and res.path == tmp_path / "t.extxyz"
    with open_trajectory(tmp_path / "t.extxyz") as back:
        assert back.wrapped is False and back.n_frames == 4 and back.temperature_K == 500.0
        np.testing.assert_allclose(back.positions(), pos[::2], atol=1e-7)
        np.testing.assert_allclose(back.cells(), cells[::2], atol=1e-7)
        np.testing.assert_allclose(back.times_fs, 1000.0 + 20.0 * np.arange(4))
        np.testing.assert_array_equal(back.steps, 100 + 20 * np.arange(4))
        assert back.labels.types == ["BH", "BH"] and back.frame_interval_fs == 20.0
    (run / "complete.json").write_text("{}")
    assert export_extxyz(run, tmp_path / "all.extxyz").complete is True
    with pytest.raises(SuperionError, match="positive integer"):
        export_extxyz(run, tmp_path / "x.extxyz", every=0)
    with pytest.raises(SuperionError, match="not a 'superion md' run directory"):
        export_extxyz(tmp_path, tmp_path / "x.extxyz")
    assert not (tmp_path / "x.extxyz").exists()
