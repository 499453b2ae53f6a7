"""MD engine: energy conservation, mass scaling, stability guard, export, input errors.

Fast tests use ASE's EMT on a 32-atom Cu cell through ``run_md(calculator=...)``; the mass
scaling and guard tests run the real M3GNet-r2SCAN-NaBH model on the 24-atom NaBH4 cell.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from superion.errors import SimulationError, SuperionError
from superion.md import MDSettings, initial_momenta, run_md
from superion.md.storage import read_thermo
from superion.trajectory import open_trajectory

NABH4 = "structures/approximants/NaBH4_P-421c-approx.cif"
MODEL = "M3GNet-r2SCAN-NaBH"


def emt():
    from ase.calculators.emt import EMT

    return EMT()


def quiet(*_a):
    pass


# ----------------------------------------------------------------------------- physics
def test_nve_energy_conservation(cu_file, tmp_path):
    """Velocity Verlet is symplectic: E_tot oscillates at O((w dt)^2) with no secular drift.

    Cu phonons reach ~7 THz (w ~ 0.044 /fs); at dt = 2 fs, (w dt)^2 ~ 8e-3, so the oscillation
    of E_tot is ~1e-2 of the kinetic-energy oscillation (~kT/2 ~ 0.02 eV/atom at 600 K),
    i.e. ~2e-4 eV/atom. We allow 1e-3 eV/atom for the largest excursion and 2e-4 eV/atom
    for the drift between the first and last quarter means. A broken integrator (wrong
    dt units, half-kicks missing) misses these by orders of magnitude.
    """
    s = MDSettings(temperature_K=600, steps=400, ensemble="nve", timestep_fs=2.0, save_every=5, seed=1)
    run_md(cu_file, tmp_path / "nve", s, calculator=emt(), log=quiet)
    t = read_thermo(tmp_path / "nve" / "thermo.csv")
    n = 32
    etot = (t["epot_eV"] + t["ekin_eV"]) / n
    np.testing.assert_allclose(t["conserved_eV"] / n, etot)
    assert t["ekin_eV"].std() / n > 5e-3  # the system actually moves (energy exchanges)
    assert np.abs(etot - etot[0]).max() < 1e-3
    q = len(etot) // 4
    assert abs(etot[-q:].mean() - etot[:q].mean()) < 2e-4


@pytest.mark.parametrize("ensemble", ["npt", "npt_iso", "nvt"])
def test_extended_ensembles_conserve_and_thermostat(cu_file, tmp_path, ensemble):
    """MTK / NHC conserved quantity stays constant (same bound as NVE) while E_tot itself
    fluctuates; temperature is controlled towards the target; NVT keeps the cell fixed."""
    s = MDSettings(temperature_K=500, steps=300, equilibration_steps=0, ensemble=ensemble, timestep_fs=2.0,
                   save_every=10, seed=2, tdamp_fs=50, pdamp_fs=300)
    run_md(cu_file, tmp_path / ensemble, s, calculator=emt(), log=quiet)
    t = read_thermo(tmp_path / ensemble / "thermo.csv")
    cons = t["conserved_eV"] / 32
    assert np.abs(cons - cons[0]).max() < 1e-3
    assert 250 < t["T_K"][len(t["T_K"]) // 2:].mean() < 750
    if ensemble == "nvt":
        assert np.ptp(t["volume_A3"]) == 0
    else:
        assert np.ptp(t["volume_A3"]) > 0.1  # the barostat acts
    if ensemble == "npt_iso":  # isotropic: a/b/c keep their ratios
        np.testing.assert_allclose(t["a_A"] / t["c_A"], 1.0, atol=1e-10)


def test_positions_unwrapped_and_frames(cu_file, tmp_path):
    """Production frames only, consecutive times, positions never jump by a cell length."""
    s = MDSettings(temperature_K=1500, steps=300, equilibration_steps=100, ensemble="nvt", timestep_fs=2.0,
                   save_every=10, seed=4, max_temperature_factor=3)
    run_md(cu_file, tmp_path / "r", s, calculator=emt(), log=quiet)
    with open_trajectory(tmp_path / "r") as tr:
        assert tr.n_frames == 31
        np.testing.assert_allclose(tr.times_fs, 200.0 + 20.0 * np.arange(31))
        pos = tr.positions()
        cell0 = tr.cells(0)[0]
    # Atom 0 sits on the cell corner and vibrates across it: unwrapped coordinates go negative
    # without jumping, a wrapped trajectory would jump by a cell length (7.2 A).
    frac = np.einsum("fni,ij->fnj", pos, np.linalg.inv(cell0))
    assert frac.min() < 0
    assert np.abs(np.diff(pos, axis=0)).max() < 1.0
    t = read_thermo(tmp_path / "r" / "thermo.csv")
    assert list(t["phase"][:10]) == ["equilibration"] * 10 and t["phase"][10] == "production"
    assert len(t["step"]) == 41


# ----------------------------------------------------------------------------- mass scaling
def test_parse_mass_scale_errors():
    from superion.md.masses import parse_mass_scale

    assert parse_mass_scale(["B12H12=5", "BH4=2.5"]) == {"B12H12": 5.0, "BH4": 2.5}
    for bad in (["B12H12"], ["=3"], ["BH4=x"], ["BH4=0"], ["BH4=-1"], ["BH4=nan"], ["BH4=2", "BH4=3"]):
        with pytest.raises(SuperionError):
            parse_mass_scale(bad)


def test_mass_scaling_masses_and_velocity_partition(shared_dir):
    """Scaled masses on exactly the cluster atoms; MB velocities of those atoms shrink by 1/sqrt(f)
    while the kinetic energy per atom stays 3/2 kT (equipartition)."""
    from ase.io import read
    from ase import units

    from superion.structures.clusters import label_clusters
    from superion.md.masses import scaled_masses

    atoms = read(shared_dir / NABH4) * (2, 2, 2)
    labels = label_clusters(atoms)
    assert labels.counts() == {"BH4": 32}
    base = atoms.get_masses()
    f = 4.0
    m = scaled_masses(base, labels, {"BH4": f})
    sym = np.array(atoms.get_chemical_symbols())
    np.testing.assert_allclose(m[sym == "Na"], base[sym == "Na"])
    np.testing.assert_allclose(m[sym != "Na"], f * base[sym != "Na"])
    with pytest.raises(SuperionError, match="not in this structure"):
        scaled_masses(base, labels, {"B12H12": 5})

    T = 600.0
    p0, p1 = initial_momenta(base, T, seed=7), initial_momenta(m, T, seed=7)
    v0, v1 = p0 / base[:, None], p1 / m[:, None]
    h = sym == "H"
    rms = lambda v, sel: np.sqrt((v[sel] ** 2).mean())  # noqa: E731
    assert rms(v1, h) / rms(v0, h) == pytest.approx(1 / np.sqrt(f), rel=0.05)
    assert rms(v1, sym == "Na") / rms(v0, sym == "Na") == pytest.approx(1.0, rel=0.1)
    np.testing.assert_allclose(p1.sum(axis=0), 0, atol=1e-10)  # zero total momentum
    ke_h = 0.5 * (p1[h] ** 2 / m[h][:, None]).sum(axis=1).mean()
    assert ke_h / (1.5 * units.kB * T) == pytest.approx(1.0, rel=0.25)  # 128 H atoms: ~9 % noise


@pytest.fixture(scope="module")
def nabh4_runs(shared_dir, tmp_path_factory):
    """Two short M3GNet NVT runs of NaBH4, unscaled and BH4 x 4, same seed."""
    base = tmp_path_factory.mktemp("m3g")
    out = {}
    for f in (1.0, 4.0):
        s = MDSettings(temperature_K=300, steps=10, ensemble="nvt", save_every=5, seed=11,
                       mass_scale={"BH4": f} if f != 1.0 else {}, save_velocities=True, trajectory_dtype="float64")
        run_md(shared_dir / NABH4, base / f"f{f:g}", s, potential=MODEL, threads=1, log=quiet)
        out[f] = base / f"f{f:g}"
    return out


def test_mass_scaling_m3gnet(nabh4_runs):
    """Same positions -> same energy (step 0); masses recorded; BH4 velocities ~1/sqrt(4)."""
    m1 = json.loads((nabh4_runs[1.0] / "metadata.json").read_text())
    m4 = json.loads((nabh4_runs[4.0] / "metadata.json").read_text())
    sym = np.array(m1["symbols"])
    np.testing.assert_allclose(np.array(m4["masses_amu"])[sym != "Na"], 4 * np.array(m1["masses_amu"])[sym != "Na"])
    np.testing.assert_allclose(np.array(m4["masses_amu"])[sym == "Na"], np.array(m1["masses_amu"])[sym == "Na"])
    assert m4["mass_scale"] == {"BH4": 4.0} and m4["potential"]["sha256"] and m4["status"] == "complete"
    t1 = read_thermo(nabh4_runs[1.0] / "thermo.csv")
    t4 = read_thermo(nabh4_runs[4.0] / "thermo.csv")
    assert t1["epot_eV"][0] == t4["epot_eV"][0]  # identical structure, identical potential energy
    assert t1["epot_eV"][-1] != t4["epot_eV"][-1]  # but different dynamics afterwards
    with open_trajectory(nabh4_runs[1.0]) as a, open_trajectory(nabh4_runs[4.0]) as b:
        h = sym == "H"
        r = np.sqrt((b.velocities(0)[0][h] ** 2).mean() / (a.velocities(0)[0][h] ** 2).mean())
        assert r == pytest.approx(0.5, rel=0.15)  # 16 H atoms, COM correction differs slightly
        np.testing.assert_allclose(b.masses[h], 4 * a.masses[h])


def test_mass_scaling_forces_unchanged(shared_dir):
    from superion.potential import load_potential
    from ase.io import read

    from superion.structures.clusters import label_clusters
    from superion.md.masses import scaled_masses

    lp = load_potential(MODEL, device="cpu")
    a = read(shared_dir / NABH4)
    b = a.copy()
    b.set_masses(scaled_masses(a.get_masses(), label_clusters(a), {"BH4": 5}))
    a.calc, b.calc = lp.calculator(), lp.calculator()
    assert a.get_potential_energy() == b.get_potential_energy()
    np.testing.assert_array_equal(a.get_forces(), b.get_forces())


# ----------------------------------------------------------------------------- guard
def test_guard_trips_on_20fs_timestep(shared_dir, tmp_path, capsys):
    from superion.cli import main

    out = tmp_path / "boom"
    code = main(["md", str(shared_dir / NABH4), "--potential", MODEL, "--temperature-K", "300", "--steps", "200",
                 "--timestep-fs", "20", "--ensemble", "nvt", "--save-every", "10", "--threads", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 3
    assert "step" in err and len(err.strip().splitlines()) == 1
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "failed" and "step" in meta["message"]
    assert not (out / "complete.json").exists()


def test_guard_overlap(cu_file, tmp_path):
    from ase.io import read, write

    # 0.6 A passes the structure reader (it refuses < 0.5 A) but not a guard set to 0.7 A.
    a = read(cu_file)
    a.positions[1] = a.positions[0] + [0.6, 0, 0]
    write(tmp_path / "bad.extxyz", a)
    s = MDSettings(temperature_K=300, steps=10, ensemble="nvt", save_every=5, min_distance_A=0.7)
    with pytest.raises(SimulationError, match=r"step 0: atoms 0 \(Cu\) and 1 \(Cu\)"):
        run_md(tmp_path / "bad.extxyz", tmp_path / "ov", s, calculator=emt(), log=quiet)
    meta = json.loads((tmp_path / "ov" / "metadata.json").read_text())
    assert meta["status"] == "failed"
    assert meta["failed_step"] == 0 and meta["message"].startswith("step 0:")
    assert not (tmp_path / "ov" / "complete.json").exists()


def test_overlapping_input_refused_before_the_run(cu_file, tmp_path):
    """Atoms closer than the reader's 0.5 A are an input error: nothing is created."""
    from ase.io import read, write

    a = read(cu_file)
    a.positions[1] = a.positions[0] + [0.3, 0, 0]
    write(tmp_path / "bad.extxyz", a)
    s = MDSettings(temperature_K=300, steps=10, ensemble="nvt", save_every=5)
    with pytest.raises(SuperionError, match=r"atoms 0 \(Cu\) and 1 \(Cu\) are only 0.300"):
        run_md(tmp_path / "bad.extxyz", tmp_path / "ov", s, calculator=emt(), log=quiet)
    assert not (tmp_path / "ov").exists()


# ----------------------------------------------------------------------------- export
def test_export_roundtrip(cu_file, tmp_path):
    from ase.io import read

    from superion.cli import main

    s = MDSettings(temperature_K=400, steps=60, ensemble="npt", save_every=10, save_velocities=True,
                   trajectory_dtype="float64")
    run_md(cu_file, tmp_path / "run", s, calculator=emt(), log=quiet)
    assert main(["export", str(tmp_path / "run"), "--format", "extxyz", "--out", str(tmp_path / "t.extxyz")]) == 0
    frames = read(tmp_path / "t.extxyz", ":")
    with open_trajectory(tmp_path / "run") as tr:
        assert len(frames) == tr.n_frames == 7
        np.testing.assert_allclose(np.array([f.positions for f in frames]), tr.positions(), atol=1e-7)
        np.testing.assert_allclose(np.array([f.cell.array for f in frames]), tr.cells(), atol=1e-7)
        np.testing.assert_allclose([f.info["time_fs"] for f in frames], tr.times_fs)
        from ase import units

        v = np.array([f.get_velocities() for f in frames]) * units.fs
        np.testing.assert_allclose(v, tr.velocities(), rtol=1e-6, atol=1e-9)
    with open_trajectory(tmp_path / "t.extxyz") as back:  # the reader takes the export back
        assert back.wrapped is False and back.n_frames == 7
    assert main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "x.extxyz")]) == 2
    assert not (tmp_path / "x.extxyz").exists()


# ----------------------------------------------------------------------------- bad inputs
BAD = [
    (["--temperature-K", "-5"], "temperature"),
    (["--steps", "0"], "steps"),
    (["--ensemble", "langevin"], "unknown ensemble"),
    (["--mass-scale", "BH4"], "CLUSTER=FACTOR"),
    (["--mass-scale", "BH4=0"], "> 0"),
    (["--mass-scale", "BH4=-2"], "> 0"),
    (["--mass-scale", "B12H12=5"], "not in this structure"),
    (["--timestep-fs", "0"], "timestep"),
    (["--save-every", "7"], "multiples"),
    (["--potential", "no-such-model-xyz"], "no-such-model-xyz"),
    (["--progress-every-s", "-1"], "--progress-every-s"),
]


@pytest.mark.parametrize("extra,msg", BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_bad_inputs(shared_dir, tmp_path, capsys, extra, msg):
    from superion.cli import main

    args = {"--potential": MODEL, "--temperature-K": "300", "--steps": "20", "--save-every": "10"}
    rest = []
    i = 0
    while i < len(extra):
        if extra[i] in args:
            args[extra[i]] = extra[i + 1]
        else:
            rest += extra[i : i + 2]
        i += 2
    argv = ["md", str(shared_dir / NABH4), "--out", str(tmp_path / "r")]
    for k, v in args.items():
        argv += [k, v]
    code = main(argv + rest)
    err = capsys.readouterr().err
    assert code == 2, err
    assert msg in err and len(err.strip().splitlines()) == 1 and err.startswith("superion: error:")
    assert not (tmp_path / "r" / "complete.json").exists()


def test_disordered_cif_refused_naming_prepare(repo_dir, tmp_path):
    """MD reads structures with superion.structures.io.read_atoms: partial occupancies are refused."""
    s = MDSettings(temperature_K=300, steps=10, ensemble="nvt", save_every=5)
    with pytest.raises(SuperionError, match="partial occupancies.*'superion prepare'"):
        run_md(repo_dir / "structures/Li6PS5Cl_F-43m.cif", tmp_path / "r", s, calculator=emt(), log=quiet)
    assert not (tmp_path / "r").exists()


def test_missing_structure(tmp_path, capsys):
    from superion.cli import main

    code = main(["md", str(tmp_path / "nope.cif"), "--potential", MODEL, "--temperature-K", "300",
                 "--steps", "10", "--out", str(tmp_path / "r")])
    assert code == 2 and "not found" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_argparse_type_errors(capsys):
    from superion.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["md", "x.cif", "--potential", MODEL, "--temperature-K", "hot", "--steps", "10", "--out", "r"])
    assert exc.value.code == 2
