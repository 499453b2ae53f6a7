"""`superion analyze ...` end to end on files written with ASE and with superion's H5 writer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from superion.cli import main

TETRA = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3)


def synthetic_frames(F=300, n_na=16, n_bh4=4, dt_fs=20.0, seed=0):
    """Na random walkers (D = 0.5 Å²/ps) + rotating BH4 in a breathing cell: (symbols, positions, cells, times)."""
    rng = np.random.default_rng(seed)
    t = np.arange(F)
    cells = np.diag([12.0, 12.5, 13.0])[None] * (1 + 0.02 * np.sin(t / 20.0))[:, None, None]
    step = np.sqrt(2 * 0.5 * dt_fs / 1000.0)
    na = rng.random((n_na, 3)) * 12 + np.cumsum(step * rng.standard_normal((F, n_na, 3)), axis=0)
    centres = np.stack(np.meshgrid([3.0, 9.0], [3.0, 9.0], [6.0], indexing="ij"), -1).reshape(-1, 3)[:n_bh4]
    angle = 0.8 * t * dt_fs / 1000.0  # rad, rotation about z
    c, s = np.cos(angle), np.sin(angle)
    rot = np.zeros((F, 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1
    h = 1.2 * np.einsum("fij,hj->fhi", rot, TETRA)
    bh4 = np.concatenate([np.broadcast_to(centres[None, :, None], (F, n_bh4, 1, 3)), centres[None, :, None] + h[:, None]], axis=2)
    pos = np.concatenate([na, bh4.reshape(F, n_bh4 * 5, 3)], axis=1)
    symbols = ["Na"] * n_na + (["B"] + ["H"] * 4) * n_bh4
    return symbols, pos, cells, t * dt_fs


def write_extxyz(path, symbols, pos, cells, times, temperature_K=None):
    from ase import Atoms
    from ase.io import write

    frames = []
    for p, c, tt in zip(pos, cells, times):
        a = Atoms(symbols, positions=p, cell=c, pbc=True)
        a.wrap()
        a.info["time_fs"] = float(tt)
        if temperature_K is not None:
            a.info["temperature_K"] = temperature_K
        frames.append(a)
    write(str(path), frames, format="extxyz")


@pytest.fixture(scope="module")
def extxyz(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "run.extxyz"
    write_extxyz(path, *synthetic_frames(F=600))  # 12 ps: random walkers move > 1 hop length over the fit window
    return path


def test_diffusion_cli_writes_json_and_npz(extxyz, tmp_path, capsys):
    out = tmp_path / "res" / "na.json"
    rc = main(["analyze", "diffusion", str(extxyz), "--species", "Na", "--temperature-K", "600", "--json", str(out)])
    assert rc == 0
    s = json.loads(out.read_text())
    for key in ("diffusivity_cm2_s", "diffusivity_stderr_cm2_s", "conductivity_mS_cm", "haven_ratio", "active_fraction",
                "n_active", "n_ions", "temperature_K", "volume_A3", "fit_start_ps", "fit_end_ps", "n_frames",
                "duration_ps", "warnings", "fit_method",
                # the statistics contract (issue 12)
                "regime", "regime_reasons", "hop_length_A", "fit_window_rule", "fit_window_source", "fit_window_found",
                "diffusivity_ci95_cm2_s", "diffusivity_upper_bound_cm2_s", "conductivity_ci95_mS_cm",
                "conductivity_upper_bound_mS_cm", "msd_ref_lag_ps", "msd_ref_A2", "msd_ref_ci95_A2", "msd_ref_method",
                "active_fraction_ci95", "n_hops", "hop_rate_per_s", "hop_rate_ci95_per_s", "hop_sites_method",
                "n_interstitial_sites", "correlation_factor"):
        assert key in s, key
    assert s["n_ions"] == 16 and s["temperature_K"] == 600.0 and s["n_frames"] == 600
    assert s["regime"] == "diffusive" and s["fit_window_source"] == "data"
    lo, hi = s["diffusivity_ci95_cm2_s"]
    assert lo < 0.5e-4 < hi and s["diffusivity_upper_bound_cm2_s"] is None
    assert any("short trajectory" in w for w in s["warnings"])
    # random walk at 0.5 A^2/ps: MSD(1 ps) = 3 A^2 inside its interval
    assert s["msd_ref_lag_ps"] == pytest.approx(1.0) and s["msd_ref_ci95_A2"][0] < 3.0 < s["msd_ref_ci95_A2"][1]
    z = np.load(out.with_suffix(".npz"))
    assert {"lag_ps", "msd_A2", "msd_xyz_A2", "msd_collective_A2", "beta_lag_ps", "beta", "fit_window_ps"} <= set(z.files)
    assert z["msd_xyz_A2"].shape == (600, 3)
    assert "D =" in capsys.readouterr().out
    # a user window overrides the data; a reference lag on the command line
    out2 = tmp_path / "res" / "na2.json"
    assert main(["analyze", "diffusion", str(extxyz), "--temperature-K", "600", "--fit-start-ps", "0.5", "--fit-end-ps", "2",
                 "--msd-ref-lag-ps", "0.4", "--json", str(out2)]) == 0
    s2 = json.loads(out2.read_text())
    assert (s2["fit_start_ps"], s2["fit_end_ps"], s2["fit_window_source"]) == (0.5, 2.0, "user")
    assert s2["msd_ref_lag_ps"] == pytest.approx(0.4)


def test_caged_run_reports_a_bound_and_null_D(tmp_path, capsys):
    """Na rattling in place (no hops): null D, an upper bound, and the CLI line says 'not resolved'."""
    symbols, pos, cells, times = synthetic_frames(F=200)
    rng = np.random.default_rng(1)
    pos[:, :16] = pos[0, :16] + 0.2 * rng.standard_normal((200, 16, 3))
    path = tmp_path / "caged.extxyz"
    write_extxyz(path, symbols, pos, cells, times)
    out = tmp_path / "caged.json"
    assert main(["analyze", "diffusion", str(path), "--temperature-K", "600", "--json", str(out)]) == 0
    s = json.loads(out.read_text())
    assert s["regime"] in ("immobile", "subdiffusive") and s["diffusivity_cm2_s"] is None
    assert s["diffusivity_upper_bound_cm2_s"] > 0 and s["conductivity_mS_cm"] is None
    assert s["n_active"] == 0 and s["active_fraction_ci95"][0] == 0.0
    text = capsys.readouterr().out
    assert "D not resolved (D <" in text and "MSD(1 ps)" in text


def test_diffusion_cli_takes_temperature_from_run_directory(tmp_path):
    from superion.trajectory import H5TrajectoryWriter

    symbols, pos, cells, times = synthetic_frames(F=120)
    run = tmp_path / "run"
    run.mkdir()
    from ase.data import atomic_masses, atomic_numbers

    numbers = np.array([atomic_numbers[s] for s in symbols])
    w = H5TrajectoryWriter.create(run / "trajectory.h5", symbols=symbols, numbers=numbers, masses_amu=atomic_masses[numbers],
                                  metadata={}, labels=None, temperature_K=700.0)
    for i in range(len(times)):
        w.append(i * 20, times[i], pos[i], cells[i])
    w.close()
    out = tmp_path / "d.json"
    assert main(["analyze", "diffusion", str(run), "--json", str(out)]) == 0
    s = json.loads(out.read_text())
    assert s["temperature_K"] == 700.0 and s["n_frames"] == 120


def test_arrhenius_cli(tmp_path, capsys):
    kB = 8.617333262e-5
    files = []
    for T in (500.0, 600.0, 700.0, 800.0):
        D = 1e-3 * np.exp(-0.2 / (kB * T)) * (1 + 0.05 * np.sin(T))
        f = tmp_path / f"d{T:g}.json"
        f.write_text(json.dumps({"temperature_K": T, "diffusivity_cm2_s": D, "diffusivity_stderr_cm2_s": 0.05 * D,
                                 "n_ions": 96, "volume_A3": 9500.0, "charge": 1.0}))
        files.append(str(f))
    out = tmp_path / "arr.json"
    assert main(["analyze", "arrhenius", *files, "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    for key in ("Ea_eV", "Ea_stderr_eV", "D0_cm2_s", "diffusivity_300K_cm2_s", "conductivity_300K_mS_cm", "conductivity_300K_ci95_mS_cm",
                "resolved", "not_resolved_reason", "sigma_300K_ci95_mS_cm", "Ea_hops_eV", "upper_bounds"):
        assert key in r
    assert r["sigma_300K_ci95_mS_cm"] == r["conductivity_300K_ci95_mS_cm"]
    assert r["Ea_eV"] == pytest.approx(0.2, abs=3 * r["Ea_stderr_eV"] + 0.01)
    lo, hi = r["conductivity_300K_ci95_mS_cm"]
    assert lo < r["conductivity_300K_mS_cm"] < hi
    # one temperature: clear error, no output
    out2 = tmp_path / "arr2.json"
    assert main(["analyze", "arrhenius", files[0], "--json", str(out2)]) == 2
    assert not out2.exists()
    assert "temperatures" in capsys.readouterr().err


def test_rotation_cli(extxyz, tmp_path):
    out = tmp_path / "rot.json"
    assert main(["analyze", "rotation", str(extxyz), "--rotation-lag-ps", "0.5", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    b = r["BH4"]
    assert b["n_clusters"] == 4
    for key in ("rotation_speed_rad_ps", "c1_tau_ps", "c2_tau_ps"):
        assert key in b
    # rigid rotation about z at 0.8 rad/ps: speed = mean 2ρ sin(ωτ/2)/(n R τ) over the 5 atoms
    rho = 1.2 * np.linalg.norm(TETRA[:, :2], axis=1)
    expected = np.sum(2 * rho * np.sin(0.8 * 0.5 / 2)) / (5 * 1.2 * 0.5)
    assert b["rotation_speed_rad_ps"] == pytest.approx(expected, rel=0.02)
    z = np.load(out.with_suffix(".npz"))
    assert "BH4_c1" in z.files and "BH4_t_ps" in z.files


def test_density_cli_writes_cube(extxyz, tmp_path):
    from ase.io.cube import read_cube_data

    out = tmp_path / "na.cube"
    assert main(["analyze", "density", str(extxyz), "--species", "Na", "--grid-spacing-A", "0.5", "--out", str(out)]) == 0
    data, atoms = read_cube_data(str(out))
    from ase.units import Bohr

    voxel = atoms.get_volume() / data.size / Bohr**3  # cube values are ions/Bohr^3
    assert data.sum() * voxel == pytest.approx(16, rel=1e-3)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--species", "Li", "--temperature-K", "600"], "species 'Li' not in the trajectory"),
        (["--temperature-K", "-3"], "temperature must be positive"),
        ([], "temperature unknown"),
        (["--temperature-K", "600", "--fit-start-ps", "1", "--fit-end-ps", "100"], "outside the trajectory"),
    ],
)
def test_diffusion_cli_bad_input_exit_2_no_output(extxyz, tmp_path, capsys, extra, message):
    out = tmp_path / "bad.json"
    assert main(["analyze", "diffusion", str(extxyz), *extra, "--json", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not out.with_suffix(".npz").exists()


def test_one_frame_and_empty_trajectories_exit_2(tmp_path, capsys):
    symbols, pos, cells, times = synthetic_frames(F=3)
    one = tmp_path / "one.extxyz"
    write_extxyz(one, symbols, pos[:1], cells[:1], times[:1])
    assert main(["analyze", "diffusion", str(one), "--temperature-K", "600", "--json", str(tmp_path / "o.json")]) == 2
    assert "frame" in capsys.readouterr().err
    empty = tmp_path / "empty.extxyz"
    empty.write_text("")
    assert main(["analyze", "diffusion", str(empty), "--temperature-K", "600", "--json", str(tmp_path / "e.json")]) == 2
    assert not (tmp_path / "o.json").exists() and not (tmp_path / "e.json").exists()


def test_library_calls_behind_the_commands_return_what_they_write(extxyz, tmp_path):
    """The commands are argparse -> one library call -> print: the call writes the files and
    returns exactly what its JSON holds."""
    from superion.analysis.density import write_density
    from superion.analysis.diffusion import write_diffusion
    from superion.analysis.outputs import curves_path
    from superion.analysis.rotation import write_rotation

    out = tmp_path / "a" / "d.json"
    s = write_diffusion(extxyz, out, "Na", 600.0, fit_start_ps=0.5)
    assert json.loads(out.read_text()) == json.loads(json.dumps(s))
    assert s["msd_file"] == "d.npz" and curves_path(out).is_file() and s["fit_start_ps"] == pytest.approx(0.5)
    r = write_rotation(extxyz, tmp_path / "r.json", lag_ps=0.5)
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(r))
    assert r["BH4"]["curves_file"] == "r.npz"
    d = write_density(extxyz, tmp_path / "na.cube", "Na", 0.5)
    assert d.n_ions == 16 and d.n_frames == 600 and d.path.is_file() and len(d.shape) == 3


def test_frame_interval_option_reaches_every_command(tmp_path):
    """Files without frame times need --frame-interval-fs; it sets the time axis once for all."""
    symbols, pos, cells, _ = synthetic_frames(F=120)
    path = tmp_path / "notimes.extxyz"
    write_extxyz(path, symbols, pos, cells, np.zeros(len(pos)))
    from ase.io import read, write

    frames = read(path, ":")
    for a in frames:
        del a.info["time_fs"]
    write(path, frames, format="extxyz")
    d = tmp_path / "d.json"
    assert main(["analyze", "diffusion", str(path), "--temperature-K", "600", "--json", str(d)]) == 2
    assert main(["analyze", "diffusion", str(path), "--temperature-K", "600", "--frame-interval-fs", "20",
                 "--json", str(d)]) == 0
    assert json.loads(d.read_text())["frame_interval_fs"] == 20.0
    r = tmp_path / "r.json"
    assert main(["analyze", "rotation", str(path), "--frame-interval-fs", "20", "--rotation-lag-ps", "0.2",
                 "--json", str(r)]) == 0
    assert json.loads(r.read_text())["BH4"]["rotation_lag_ps"] == pytest.approx(0.2)
    assert main(["analyze", "density", str(path), "--frame-interval-fs", "20", "--out", str(tmp_path / "x.cube")]) == 0
    assert main(["analyze", "density", str(path), "--frame-interval-fs", "-1", "--out", str(tmp_path / "y.cube")]) == 2
    assert not (tmp_path / "y.cube").exists()
