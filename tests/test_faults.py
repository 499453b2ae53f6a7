"""Fault / bad-input matrix: every case is a real command line with one bad input.

Each case asserts the exit status, that stderr is exactly one line naming the problem (no
traceback, no "internal error", no library warning), and that no output that looks complete is
left behind. ``md`` and ``relax`` run as subprocesses (``python -m superion``), the way a user or
Snakemake calls them; the rest run in-process through :func:`superion.cli.main`, with the Python
warnings a user would see (UserWarning, RuntimeWarning) counted as stderr lines. Nothing here
loads a potential: every bad input is refused before the model.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
NABH4 = REPO / "structures" / "NaBH4_F-43m.cif"
MODEL = "M3GNet-r2SCAN-NaBH"
TETRA = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3)


# ----------------------------------------------------------------------------- inputs
def physical_frames(F=60, n_na=8, dt_fs=20.0, seed=0):
    """Na random walkers (D = 0.1 Å²/ps, well within thermal speeds) and 4 BH4 in a 12 Å cube:
    (symbols, positions (F, N, 3) Å, cell (3, 3), times fs). Physically possible at 600 K."""
    rng = np.random.default_rng(seed)
    step = np.sqrt(2 * 0.1 * dt_fs / 1000.0)
    na = rng.random((n_na, 3)) * 12 + np.cumsum(step * rng.standard_normal((F, n_na, 3)), axis=0)
    centres = np.array([[3.0, 3.0, 6.0], [9.0, 3.0, 6.0], [3.0, 9.0, 6.0], [9.0, 9.0, 6.0]])
    bh4 = np.concatenate([centres[:, None], centres[:, None] + 1.2 * TETRA[None]], axis=1).reshape(-1, 3)
    fw = bh4[None] + 0.02 * rng.standard_normal((F, len(bh4), 3))
    symbols = ["Na"] * n_na + (["B"] + ["H"] * 4) * 4
    return symbols, np.concatenate([na, fw], axis=1), np.eye(3) * 12.0, np.arange(F) * dt_fs


def write_frames(path, symbols, pos, cell, times, temperature_K=600.0, cells=None):
    from ase import Atoms
    from ase.io import write

    frames = []
    for i, (p, t) in enumerate(zip(pos, times)):
        a = Atoms(symbols, positions=p, cell=cell if cells is None else cells[i], pbc=True)
        a.info.update(time_fs=float(t), temperature_K=temperature_K)
        frames.append(a)
    write(str(path), frames, format="extxyz")


def write_h5(path, symbols, pos, cell, times, temperature_K=600.0):
    from ase.data import atomic_masses, atomic_numbers

    from superion.trajectory import H5TrajectoryWriter

    numbers = np.array([atomic_numbers[s] for s in symbols])
    w = H5TrajectoryWriter.create(path, symbols=symbols, numbers=numbers, masses_amu=atomic_masses[numbers],
                                  metadata={}, labels=None, temperature_K=temperature_K)
    for i, t in enumerate(times):
        w.append(i, t, pos[i], cell)
    w.close()


def write_config(path, structure, **changes):
    cfg = {"temperatures_K": [600, 700], "mass_settings": {"ref": {}},
           "systems": {"a": {"structure": str(structure), "potential": MODEL, "mobile_species": "Na",
                             "supercell": [1, 1, 1]}}}
    for dotted, value in changes.items():
        node = cfg
        keys = dotted.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def inp(tmp_path_factory):
    """Every bad input of the matrix, made here (small: the matrix runs in CI)."""
    from ase.io import read, write

    d = tmp_path_factory.mktemp("faults")
    paths = {"dir": d, "nabh4": NABH4}
    (d / "a_file").write_text("not a folder\n")  # an output "folder" that cannot be created
    lines = NABH4.read_text().splitlines()
    (d / "cut.cif").write_text("\n".join(lines[:-4]) + "\n")  # cut at a line boundary: the 4 Na lines lost
    atoms = read(str(NABH4))
    for name, change in (("nan", lambda a: a.positions.__setitem__((3, 1), np.nan)),
                         ("far", lambda a: a.positions.__setitem__((5, 0), 1e6)),
                         ("overlap", lambda a: a.positions.__setitem__(7, a.positions[6] + 0.1))):
        a = atoms.copy()
        change(a)
        write(str(d / f"{name}.extxyz"), a)
    symbols, pos, cell, times = physical_frames()
    write_frames(d / "good.extxyz", symbols, pos, cell, times)
    bad = pos.copy()
    bad[17, 2] = np.nan
    write_frames(d / "nan_traj.extxyz", symbols, bad, cell, times)
    write_frames(d / "one_frame.extxyz", symbols, pos[:1], cell, times[:1])
    write_frames(d / "all_na.extxyz", symbols[:8], pos[:, :8], cell, times)
    cells = np.broadcast_to(cell, (len(times), 3, 3)).copy()
    cells[9, 1, 1] = np.nan
    write_frames(d / "nan_cell.extxyz", symbols, pos, cell, times, cells=cells)
    shutil.copy(d / "good.extxyz", d / "good.dat")  # a name that says nothing about the format
    # superion's own trajectory with one frame overwritten by garbage (issue: D 3.2e-5 -> 7.5e-5)
    run = d / "run"
    run.mkdir()
    write_h5(run / "trajectory.h5", symbols, pos, cell, times)
    import h5py

    with h5py.File(run / "trajectory.h5", "r+") as f:
        f["particles/all/position/value"][30] = 1e6
    # superion md run directories (EMT, seconds), damaged after the run
    sys.path.insert(0, str(Path(__file__).parent))
    from test_md_resume import EMT

    from superion.md import MDSettings, run_md

    done = d / "md_done"
    run_md(paths_cu(d), done, MDSettings(temperature_K=600, steps=40, ensemble="nvt", timestep_fs=2.0, save_every=5,
                                         seed=1), calculator=EMT(), log=lambda *a: None)
    for name, damage in (("md_bad_meta", lambda r: (r / "metadata.json").write_text('{"settings": {')),
                         ("md_bad_complete", lambda r: (r / "complete.json").write_text("")),
                         ("md_flipped", lambda r: _flip_bytes(r / "trajectory.h5"))):
        shutil.copytree(done, d / name, symlinks=True)
        damage(d / name)
    with open(d / "types.lammpstrj", "w") as fh:  # a LAMMPS dump with numeric types only
        for k in range(5):
            fh.write(f"ITEM: TIMESTEP\n{10 * k}\nITEM: NUMBER OF ATOMS\n4\nITEM: BOX BOUNDS pp pp pp\n"
                     "0 8\n0 8\n0 8\nITEM: ATOMS id type x y z\n")
            for i, t in enumerate((1, 1, 2, 3)):
                fh.write(f"{i + 1} {t} {1 + 2 * i + 0.01 * k} 2.0 3.0\n")
    (d / "t.dcd").write_bytes(b"\0" * 64)
    (d / "relax_vasprun.xml").write_text(
        '<?xml version="1.0"?>\n<modeling><incar><i type="int" name="IBRION"> 2 </i><i name="POTIM"> 0.5 </i></incar>'
        "</modeling>\n")
    # configs (structures by absolute path)
    cfg = d / "cfg"
    cfg.mkdir()
    paths["cfg"] = cfg
    paths.update({k: d / v for k, v in {
        "cut": "cut.cif", "nan": "nan.extxyz", "far": "far.extxyz", "overlap": "overlap.extxyz",
        "good": "good.extxyz", "nan_traj": "nan_traj.extxyz", "one_frame": "one_frame.extxyz",
        "all_na": "all_na.extxyz", "nan_cell": "nan_cell.extxyz", "dat": "good.dat", "run": "run",
        "types": "types.lammpstrj", "dcd": "t.dcd", "relax_vasprun": "relax_vasprun.xml", "a_file": "a_file",
        "md_bad_meta": "md_bad_meta", "md_bad_complete": "md_bad_complete", "md_flipped": "md_flipped",
    }.items()})
    return paths


def paths_cu(d: Path) -> Path:
    from ase.build import bulk
    from ase.io import write

    write(str(d / "cu.extxyz"), bulk("Cu", cubic=True) * (2, 2, 2))
    return d / "cu.extxyz"


def _flip_bytes(h5: Path) -> None:
    """Overwrite 4 bytes in the middle of the first position chunk (not a truncation)."""
    import h5py

    with h5py.File(h5, "r") as f:
        off = f["particles/all/position/value"].id.get_chunk_info(0).byte_offset
    with open(h5, "r+b") as fh:
        fh.seek(off + 100)
        fh.write(b"\xde\xad\xbe\xef")


def _copied(i, o, key) -> str:
    """A copy of input run directory ``key`` in the output folder (the case may touch it)."""
    shutil.copytree(i[key], o / "run", symlinks=True)
    return str(o / "run")


# ----------------------------------------------------------------------------- the matrix
@dataclass
class Case:
    argv: Callable[[dict, Path], list[str]]  # (inputs, output folder) -> command line after "superion"
    needles: tuple[str, ...]  # what the one line must say
    code: int = 2
    left: Callable[[Path], list[Path]] = field(default=lambda out: [])  # outputs that must not exist
    subprocess: bool = False


def _prep(src, *extra):
    return lambda i, o: ["prepare", str(i[src] if src in i else src), "--out", str(o / "p.extxyz"), "--supercell",
                         "1", "1", "1", *extra]


def _relax(src, *extra, out="r.cif"):
    return lambda i, o: ["relax", str(i[src]), "--potential", MODEL, "--out", str(o / out), *extra]


def _md(src="nabh4", *extra, **opts):
    """``superion md`` on ``src`` with valid settings, ``opts`` (str or (inputs, out) -> str) replacing them."""
    def argv(i, o):
        args = {"potential": MODEL, "temperature_K": "300", "steps": "20", "save_every": "10", "out": str(o / "run")}
        args.update(opts)
        out = ["md", str(i[src])]
        for k, v in args.items():
            out += [f"--{k.replace('_', '-')}", v(i, o) if callable(v) else v]
        return out + list(extra)
    return argv


def _diff(src, *extra, species="Na"):
    return lambda i, o: ["analyze", "diffusion", str(i[src]), "--species", species, "--json", str(o / "d.json"), *extra]


def _cfg(structure=None, **changes):
    return lambda i, o: ["config", "validate", str(write_config(o / "c.yaml", structure or i["nabh4"], **changes))]


PREP_OUT = lambda o: [o / "p.extxyz", o / "p.json"]  # noqa: E731
RELAX_OUT = lambda o: [o / "r.cif", o / "r.json"]  # noqa: E731
MD_OUT = lambda o: [o / "run" / "complete.json", o / "run" / "trajectory.h5"]  # noqa: E731
DIFF_OUT = lambda o: [o / "d.json", o / "d.npz"]  # noqa: E731

CASES: dict[str, Case] = {
    # prepare: the structure reader at every edge
    "prepare_nan_position": Case(_prep("nan"), ("atom 3 (H)", "non-finite position"), left=PREP_OUT),
    "prepare_garbage_coordinate": Case(_prep("far"), ("atom 5", "cells away"), left=PREP_OUT),
    "prepare_cif_cut_drops_na": Case(_prep("cut"), ("cut.cif", "Missing elements Na", "cut short"), left=PREP_OUT),
    "prepare_mobile_species_lost": Case(_prep(REPO / "structures" / "Li6PS5Cl_F-43m.cif", "--mobile-species", "Na"),
                                        ("contains no Na", "mobile species"), left=PREP_OUT),
    "prepare_overlapping_atoms": Case(_prep("overlap"), ("only 0.", "apart"), left=PREP_OUT),
    "prepare_missing_file": Case(_prep("no_such.cif"), ("not found",), left=PREP_OUT),
    "prepare_output_dir_unwritable": Case(lambda i, o: ["prepare", str(i["nabh4"]), "--out", str(i["a_file"] / "p.extxyz")],
                                          ("cannot write", "is a file, not a folder")),
    "prepare_negative_width": Case(lambda i, o: ["prepare", str(i["nabh4"]), "--out", str(o / "p.extxyz"),
                                                 "--min-width-A", "-3"], ("min",), left=PREP_OUT),
    # relax (subprocess; refused before the potential loads)
    "relax_nan_position": Case(_relax("nan"), ("non-finite position",), left=RELAX_OUT, subprocess=True),
    "relax_overlapping_atoms": Case(_relax("overlap"), ("apart",), left=RELAX_OUT, subprocess=True),
    "relax_negative_fmax": Case(_relax("nabh4", "--fmax", "-0.1"), ("fmax",), left=RELAX_OUT, subprocess=True),
    "relax_output_dir_unwritable": Case(lambda i, o: ["relax", str(i["nabh4"]), "--potential", MODEL,
                                                      "--out", str(i["a_file"] / "r.cif")],
                                        ("cannot write", "not a folder"), subprocess=True),
    # md (subprocess; refused before the potential loads)
    "md_nan_position": Case(_md("nan"), ("non-finite position", "atom 3"), left=lambda o: [o / "run"], subprocess=True),
    "md_overlapping_atoms": Case(_md("overlap"), ("apart",), left=lambda o: [o / "run"], subprocess=True),
    "md_negative_temperature": Case(_md(temperature_K="-300"), ("temperature", "> 0"), left=MD_OUT, subprocess=True),
    "md_non_numeric_temperature": Case(_md(temperature_K="hot"), ("--temperature-K", "invalid float"), left=MD_OUT,
                                       subprocess=True),
    "md_negative_timestep": Case(_md(timestep_fs="-1"), ("timestep",), left=MD_OUT, subprocess=True),
    "md_non_numeric_timestep": Case(_md(timestep_fs="1fs"), ("--timestep-fs", "invalid float"), left=MD_OUT,
                                    subprocess=True),
    "md_negative_steps": Case(_md(steps="-20"), ("steps",), left=MD_OUT, subprocess=True),
    "md_non_numeric_steps": Case(_md(steps="ten"), ("--steps", "invalid int"), left=MD_OUT, subprocess=True),
    "md_steps_not_multiple_of_save": Case(_md(steps="25"), ("multiples of --save-every",), left=MD_OUT,
                                          subprocess=True),
    "md_mass_factor_zero": Case(_md("nabh4", "--mass-scale", "BH4=0"), ("> 0",), left=MD_OUT, subprocess=True),
    "md_mass_factor_negative": Case(_md("nabh4", "--mass-scale", "BH4=-2"), ("> 0",), left=MD_OUT, subprocess=True),
    "md_unknown_cluster_type": Case(_md("nabh4", "--mass-scale", "B13H13=5"), ("B13H13", "not in this structure"),
                                    left=MD_OUT, subprocess=True),
    "md_unknown_ensemble": Case(_md(ensemble="npx"), ("unknown ensemble",), left=MD_OUT, subprocess=True),
    "md_output_is_a_file": Case(_md(out=lambda i, o: str(i["a_file"])), ("not a directory",), subprocess=True),
    "md_missing_structure": Case(lambda i, o: ["md", str(o / "none.cif"), "--potential", MODEL, "--temperature-K",
                                               "300", "--steps", "10", "--out", str(o / "run")],
                                 ("not found",), left=lambda o: [o / "run"], subprocess=True),
    "md_damaged_metadata": Case(lambda i, o: ["md", str(i["dir"] / "cu.extxyz"), "--potential", MODEL,
                                              "--temperature-K", "600", "--steps", "40", "--out",
                                              _copied(i, o, "md_bad_meta")],
                                ("metadata.json is damaged or not valid JSON", "rerun superion md"), subprocess=True),
    # analyze
    "diffusion_trajectory_bytes_overwritten": Case(lambda i, o: _diff("md_flipped", species="Cu")(i, o),
                                                   ("trajectory.h5", "position/value is damaged"), left=DIFF_OUT),
    "diffusion_damaged_complete_json": Case(lambda i, o: _diff("md_bad_complete", species="Cu")(i, o),
                                            ("complete.json is damaged or not valid JSON",), left=DIFF_OUT),
    "diffusion_nan_position": Case(_diff("nan_traj", "--temperature-K", "600"), ("frame 17", "atom 2 (Na)", "non-finite"),
                                   left=DIFF_OUT),
    "diffusion_frame_overwritten_1e6": Case(_diff("run"), ("moved", "between frames 29 and 30", "beyond any physical"),
                                            left=DIFF_OUT),
    "diffusion_no_mobile_ions": Case(_diff("good", species="Li"), ("'Li' not in the trajectory",), left=DIFF_OUT),
    "diffusion_one_frame": Case(_diff("one_frame"), ("1 frame(s)", "at least 3"), left=DIFF_OUT),
    "diffusion_every_atom_mobile": Case(_diff("all_na"), ("every atom", "--drift none"), left=DIFF_OUT),
    "diffusion_fit_window_outside": Case(_diff("good", "--fit-start-ps", "5", "--fit-end-ps", "9"),
                                         ("fit window", "outside the trajectory"), left=DIFF_OUT),
    "diffusion_negative_temperature": Case(_diff("good", "--temperature-K", "-5"), ("temperature must be positive",),
                                           left=DIFF_OUT),
    "diffusion_type_only_lammps_dump": Case(_diff("types", "--frame-interval-fs", "10", species="Li"),
                                            ("numeric atom types", "--type-map"), left=DIFF_OUT),
    "diffusion_bad_type_map": Case(_diff("types", "--frame-interval-fs", "10", "--type-map", "1=Li,2=Xx,3=S"),
                                   ("'Xx'", "not an element"), left=DIFF_OUT),
    "diffusion_unknown_suffix": Case(_diff("dat"), ("guessed from the name", "pass --format"), left=DIFF_OUT),
    "diffusion_unknown_format_name": Case(_diff("good", "--format", "exyz"), ("not a format ASE reads",),
                                          left=DIFF_OUT),
    "diffusion_dcd_without_topology": Case(_diff("dcd", "--frame-interval-fs", "10"), ("--topology",), left=DIFF_OUT),
    "diffusion_vasprun_not_md": Case(_diff("relax_vasprun"), ("not a molecular-dynamics run", "IBRION = 2"),
                                     left=DIFF_OUT),
    "diffusion_output_dir_unwritable": Case(lambda i, o: ["analyze", "diffusion", str(i["good"]), "--json",
                                                          str(i["a_file"] / "d.json")], ("cannot write",)),
    "density_nan_position": Case(lambda i, o: ["analyze", "density", str(i["nan_traj"]), "--out", str(o / "na.cube")],
                                 ("frame 17", "non-finite"), left=lambda o: [o / "na.cube"]),
    "rotation_nan_cell": Case(lambda i, o: ["analyze", "rotation", str(i["nan_cell"]), "--json", str(o / "r.json")],
                              ("frame 9", "cell is not finite"), left=lambda o: [o / "r.json", o / "r.npz"]),
    # config validate
    "config_unknown_key": Case(_cfg(tempratures_K=[600]), ("unknown key", "tempratures_K")),
    "config_wrong_type": Case(_cfg(**{"md.timestep_fs": "1 fs"}), ("md.timestep_fs", "not of type")),
    "config_empty_temperatures": Case(_cfg(temperatures_K=[]), ("temperatures_K", "must not be empty")),
    "config_negative_temperature": Case(_cfg(temperatures_K=[600, -300]), ("temperatures_K[1]", "> 0 K")),
    "config_mass_factor_not_positive": Case(_cfg(mass_settings={"ref": {}, "x": {"BH4": 0}}), ("mass_settings.x.BH4", "must be > 0")),
    "config_unknown_cluster_type": Case(_cfg(mass_settings={"ref": {}, "x": {"B13H13": 2}}), ("unknown cluster type",)),
    "config_mobile_species_absent": Case(_cfg(**{"systems.a.mobile_species": "Li"}),
                                         ("mobile_species", "Li is not in", "elements: B, H, Na")),
    "config_scaled_anion_absent": Case(_cfg(mass_settings={"ref": {}, "heavy": {"B12H12": 10}},
                                            **{"systems.a.mass_settings": ["ref", "heavy"]}),
                                       ("'heavy' scales B12H12", "clusters there: BH4")),
    "config_production_not_multiple_of_save": Case(_cfg(md={"production_ps": 0.105, "save_every_fs": 10.0}),
                                                   ("production_ps 0.105", "whole multiple of save_every_fs 10")),
    "config_too_few_frames": Case(_cfg(md={"production_ps": 0.02, "save_every_fs": 10.0}), ("2 frame(s)", "at least 3")),
}


def run_cli(argv: list[str], in_subprocess: bool) -> tuple[int, str]:
    """(exit status, stderr as the user sees it) of ``superion ARGV``."""
    if in_subprocess:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
        proc = subprocess.run([sys.executable, "-m", "superion", *argv], capture_output=True, text=True, env=env,
                              timeout=120)
        return proc.returncode, proc.stderr
    import contextlib
    import io

    from superion.cli import main

    err = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("default")
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
    shown = [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, (UserWarning, RuntimeWarning))]
    return code, err.getvalue() + "".join(line + "\n" for line in shown)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fault(name, inp, tmp_path):
    case = CASES[name]
    out = tmp_path / "out"
    out.mkdir()
    code, err = run_cli(case.argv(inp, out), case.subprocess)
    lines = err.strip().splitlines()
    assert code == case.code, err
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("superion") and ": error: " in line, line
    assert "Traceback" not in err and "internal error" not in err
    for needle in case.needles:
        assert needle in line, (needle, line)
    for path in case.left(out):
        assert not path.exists(), f"{path} left behind"
    assert not any(p.name.startswith(".") for p in out.rglob("*")), "a temporary file was left behind"


def test_matrix_is_wide():
    groups = {n.split("_")[0] for n in CASES}
    assert len(CASES) >= 30 and {"prepare", "relax", "md", "diffusion", "density", "rotation", "config"} <= groups
