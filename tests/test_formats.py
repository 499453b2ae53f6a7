"""Trajectory formats for analysis: each one written here, read back as the same trajectory, and
analysed to the same D as the extended-XYZ file of the same frames.

ASE formats (--format, .exyz, XDATCAR.gz, vasprun.xml MD, LAMMPS dumps with --type-map) always;
DCD/XTC/TRR with a topology only where MDAnalysis (the optional ``formats`` extra) is installed.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys

import numpy as np
import pytest

from superion.cli import main
from superion.errors import SuperionError
from superion.trajectory import open_trajectory

from test_faults import physical_frames, write_frames


@pytest.fixture(scope="module")
def frames():
    """Li (the mobile ion), P and S in a 12 Å cube: LAMMPS types 1, 2, 3; positions wrapped."""
    symbols, pos, cell, times = physical_frames(F=80, dt_fs=20.0, seed=3)
    symbols = ["Li" if s == "Na" else {"B": "P", "H": "S"}[s] for s in symbols]
    pos = pos % 12.0
    return symbols, pos, cell, times


@pytest.fixture(scope="module")
def reference(frames, tmp_path_factory):
    """The frames as extxyz and their 'analyze diffusion' summary."""
    d = tmp_path_factory.mktemp("ref")
    write_frames(d / "ref.extxyz", *frames)
    return d / "ref.extxyz", diffusion(d / "ref.extxyz", d / "ref.json")


def diffusion(path, out, *extra):
    code = main(["analyze", "diffusion", str(path), "--species", "Li", "--temperature-K", "600", "--json", str(out),
                 *map(str, extra)])
    assert code == 0
    return json.loads(out.read_text())


def same_trajectory(tr, frames, atol=1e-6, times=True):
    symbols, pos, cell, t = frames
    assert tr.symbols == symbols and tr.n_frames == len(t)
    np.testing.assert_allclose(tr.positions(), pos, atol=atol)
    np.testing.assert_allclose(tr.cells(), np.broadcast_to(cell, (len(t), 3, 3)), atol=atol)
    if times:
        np.testing.assert_allclose(tr.times_fs - tr.times_fs[0], t - t[0], rtol=1e-6)


# ----------------------------------------------------------------------------- ASE formats
def test_format_option_reads_any_name(frames, reference, tmp_path):
    ref, s_ref = reference
    shutil.copy(ref, tmp_path / "run.exyz")  # an extxyz under a name ASE does not know: an alias
    shutil.copy(ref, tmp_path / "run.frames")
    with open_trajectory(tmp_path / "run.exyz") as tr:
        same_trajectory(tr, frames)
    with pytest.raises(SuperionError, match="--format"):
        open_trajectory(tmp_path / "run.frames")
    with open_trajectory(tmp_path / "run.frames", format="extxyz") as tr:
        same_trajectory(tr, frames)
        assert tr.metadata["format"] == "extxyz"
    s = diffusion(tmp_path / "run.frames", tmp_path / "d.json", "--format", "extxyz")
    assert s["msd_ref_A2"] == s_ref["msd_ref_A2"]


def test_xdatcar_gz(frames, reference, tmp_path):
    from ase import Atoms
    from ase.io import write

    symbols, pos, cell, times = frames
    write(str(tmp_path / "XDATCAR"), [Atoms(symbols, positions=p, cell=cell, pbc=True) for p in pos],
          format="vasp-xdatcar")
    with open(tmp_path / "XDATCAR", "rb") as src, gzip.open(tmp_path / "XDATCAR.gz", "wb") as dst:
        dst.write(src.read())
    with pytest.raises(SuperionError, match="frame interval"):  # XDATCAR stores no time
        open_trajectory(tmp_path / "XDATCAR.gz")
    with open_trajectory(tmp_path / "XDATCAR.gz", frame_interval_fs=20.0) as tr:
        assert sorted(tr.symbols) == sorted(symbols)  # POSCAR order: one block per element
    s = diffusion(tmp_path / "XDATCAR.gz", tmp_path / "d.json", "--frame-interval-fs", 20)
    assert s["msd_ref_A2"] == pytest.approx(reference[1]["msd_ref_A2"], rel=1e-5)


def write_lammps_dump(path, frames, element_column=False, steps_per_frame=20):
    symbols, pos, cell, times = frames
    types = {"Li": 1, "P": 2, "S": 3}
    order = np.random.default_rng(0).permutation(len(symbols))  # LAMMPS writes atoms in any order; ids sort them
    with open(path, "w") as fh:
        for f in range(len(times)):
            fh.write(f"ITEM: TIMESTEP\n{f * steps_per_frame}\nITEM: NUMBER OF ATOMS\n{len(symbols)}\n"
                     "ITEM: BOX BOUNDS pp pp pp\n" + "".join(f"0.0 {cell[k, k]:.6f}\n" for k in range(3)))
            fh.write("ITEM: ATOMS id type" + (" element" if element_column else "") + " x y z\n")
            for i in order:
                el = f" {symbols[i]}" if element_column else ""
                fh.write(f"{i + 1} {types[symbols[i]]}{el} {pos[f, i, 0]:.8f} {pos[f, i, 1]:.8f} {pos[f, i, 2]:.8f}\n")


def test_lammps_dump_with_numeric_types_needs_a_type_map(frames, reference, tmp_path):
    dump = tmp_path / "dump.lammpstrj"
    write_lammps_dump(dump, frames)
    with pytest.raises(SuperionError, match=r"numeric atom types \(1, 2, 3\).*--type-map"):
        open_trajectory(dump, frame_interval_fs=20.0)
    with pytest.raises(SuperionError, match="type\\(s\\) 3"):
        open_trajectory(dump, frame_interval_fs=20.0, type_map="1=Li,2=P")
    with open_trajectory(dump, frame_interval_fs=20.0, type_map="1=Li,2=P,3=S") as tr:
        same_trajectory(tr, frames)
        np.testing.assert_array_equal(tr.steps, 20 * np.arange(len(frames[3])))
    s = diffusion(dump, tmp_path / "d.json", "--frame-interval-fs", 20, "--type-map", "1=Li,2=P,3=S")
    assert s["msd_ref_A2"] == pytest.approx(reference[1]["msd_ref_A2"], rel=1e-6)
    # the issue: without the map, type 3 was read as Li and 'analyze --species Li' analysed the S atoms
    assert main(["analyze", "diffusion", str(dump), "--species", "Li", "--temperature-K", "600",
                 "--frame-interval-fs", "20", "--json", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()


def test_lammps_dump_with_elements_reads_as_is(frames, tmp_path):
    dump = tmp_path / "dump.lammpstrj"
    write_lammps_dump(dump, frames, element_column=True)
    with open_trajectory(dump, frame_interval_fs=20.0) as tr:
        same_trajectory(tr, frames)
    with pytest.raises(SuperionError, match="drop --type-map"):
        open_trajectory(dump, frame_interval_fs=20.0, type_map="1=Li")
    write_frames(tmp_path / "t.extxyz", *frames)
    with pytest.raises(SuperionError, match="names its elements"):  # a type map is for numeric types only
        open_trajectory(tmp_path / "t.extxyz", type_map="1=Li")


def write_vasprun(path, symbols, pos, cell, potim=2.0, tebeg=600.0, ibrion=0):
    """A vasprun.xml of an MD run as VASP writes it (the parts ASE reads), fractional positions."""
    frac = pos @ np.linalg.inv(cell)

    def varray(name, rows):
        return f'<varray name="{name}">' + "".join(f"<v> {a:.10f} {b:.10f} {c:.10f} </v>" for a, b, c in rows) + "</varray>"

    def structure(f, name=None):
        return (f'<structure{f" name={chr(34)}{name}{chr(34)}" if name else ""}><crystal>{varray("basis", cell)}'
                f'</crystal>{varray("positions", f)}</structure>')

    energy = '<energy><i name="e_fr_energy"> -1.0 </i><i name="e_0_energy"> -1.0 </i></energy>'
    parts = ['<?xml version="1.0" encoding="ISO-8859-1"?>', "<modeling>",
             f'<incar><i type="int" name="IBRION"> {ibrion} </i><i name="POTIM"> {potim} </i>'
             f'<i name="TEBEG"> {tebeg} </i></incar>',
             '<kpoints><varray name="kpointlist"><v> 0 0 0 </v></varray><varray name="weights"><v> 1 </v></varray></kpoints>',
             f'<parameters><separator name="ionic"><i type="int" name="IBRION"> {ibrion} </i>'
             f'<i name="POTIM"> {potim} </i></separator></parameters>',
             '<atominfo><array name="atoms"><set>' + "".join(f"<rc><c>{s}</c><c>1</c></rc>" for s in symbols)
             + "</set></array></atominfo>", structure(frac[0], "initialpos")]
    parts += [f"<calculation>{structure(f)}<scstep>{energy}</scstep>{energy}</calculation>" for f in frac]
    path.write_text("\n".join(parts + ["</modeling>"]))


def test_vasprun_md_takes_interval_and_temperature_from_the_file(frames, reference, tmp_path):
    symbols, pos, cell, times = frames
    write_vasprun(tmp_path / "vasprun.xml", symbols, pos, cell, potim=20.0, tebeg=600.0)
    with open_trajectory(tmp_path / "vasprun.xml") as tr:
        same_trajectory(tr, frames)
        assert tr.frame_interval_fs == 20.0 and tr.temperature_K == 600.0
    with open_trajectory(tmp_path / "vasprun.xml", frame_interval_fs=10.0) as tr:  # an explicit interval wins
        assert tr.frame_interval_fs == 10.0
    code = main(["analyze", "diffusion", str(tmp_path / "vasprun.xml"), "--species", "Li", "--json",
                 str(tmp_path / "d.json")])
    assert code == 0
    s = json.loads((tmp_path / "d.json").read_text())
    assert s["temperature_K"] == 600.0 and s["frame_interval_fs"] == 20.0
    assert s["msd_ref_A2"] == pytest.approx(reference[1]["msd_ref_A2"], rel=1e-6)
    write_vasprun(tmp_path / "relax.xml", symbols, pos[:3], cell, ibrion=2)
    with pytest.raises(SuperionError, match="IBRION = 2"):
        open_trajectory(tmp_path / "relax.xml", format="vasp-xml")


# ----------------------------------------------------------------------------- MDAnalysis formats
@pytest.fixture(scope="module")
def mda_files(frames, tmp_path_factory):
    """The frames as XTC, TRR and DCD with a PDB (elements), a GRO (names only) and a LAMMPS data
    file (numeric types, masses)."""
    mda = pytest.importorskip("MDAnalysis")
    import warnings

    from ase import Atoms
    from ase.io import write

    symbols, pos, cell, times = frames
    d = tmp_path_factory.mktemp("mda")
    n = len(symbols)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe.empty(n, trajectory=True)
        u.add_TopologyAttr("names", symbols)
        u.add_TopologyAttr("types", symbols)
        u.add_TopologyAttr("elements", symbols)
        u.add_TopologyAttr("resnames", ["X"])
        u.add_TopologyAttr("resids", [1])
        u.dimensions = [cell[0, 0], cell[1, 1], cell[2, 2], 90, 90, 90]
        u.atoms.positions = pos[0]
        u.atoms.write(str(d / "top.pdb"))
        u.atoms.write(str(d / "top.gro"))
        for ext in ("xtc", "trr", "dcd"):
            with mda.Writer(str(d / f"t.{ext}"), n) as w:
                for f in range(len(times)):
                    u.atoms.positions = pos[f]
                    u.trajectory.ts.time = times[f] / 1000.0  # ps
                    u.trajectory.ts.data["step"] = 20 * f
                    w.write(u.atoms)
    write(str(d / "top.data"), Atoms(symbols, positions=pos[0], cell=cell, pbc=True), format="lammps-data",
          masses=True, specorder=["Li", "P", "S"])
    return d


@pytest.mark.parametrize("ext", ["xtc", "trr"])
def test_xtc_trr_with_pdb_topology(frames, reference, mda_files, tmp_path, ext):
    d = mda_files
    with open_trajectory(d / f"t.{ext}", topology=d / "top.pdb") as tr:
        same_trajectory(tr, frames, atol=6e-3 if ext == "xtc" else 1e-4)  # XTC keeps 0.001 nm
        assert tr.frame_interval_fs == pytest.approx(20.0, rel=1e-5)
        np.testing.assert_array_equal(tr.steps, 20 * np.arange(len(frames[3])))
    with pytest.raises(SuperionError, match="contradicts"):
        open_trajectory(d / f"t.{ext}", 10.0, topology=d / "top.pdb")
    s = diffusion(d / f"t.{ext}", tmp_path / "d.json", "--topology", d / "top.pdb")
    assert s["msd_ref_A2"] == pytest.approx(reference[1]["msd_ref_A2"], rel=0.02)


def test_gro_topology_names_no_elements(frames, mda_files):
    d = mda_files
    with pytest.raises(SuperionError, match="does not name the elements.*--type-map"):
        open_trajectory(d / "t.xtc", topology=d / "top.gro")
    types = {"LI": "Li", "P": "P", "S": "S"}
    with open_trajectory(d / "t.xtc", topology=d / "top.gro", type_map=types) as tr:
        assert tr.symbols == frames[0]


def test_lammps_dcd_with_data_file(frames, reference, mda_files, tmp_path):
    d = mda_files
    with pytest.raises(SuperionError, match="--frame-interval-fs"):  # DCD time units depend on the writer
        open_trajectory(d / "t.dcd", topology=d / "top.data", type_map="1=Li,2=P,3=S")
    with pytest.raises(SuperionError, match="types: 1, 2, 3"):
        open_trajectory(d / "t.dcd", 20.0, topology=d / "top.data")
    with open_trajectory(d / "t.dcd", 20.0, topology=d / "top.data", type_map="1=Li,2=P,3=S") as tr:
        same_trajectory(tr, frames, atol=1e-4)
        np.testing.assert_allclose(tr.masses[:2], [6.94, 6.94], atol=0.01)  # the data file's masses
        chunks = [(sl, p.copy()) for sl, p in tr.iter_positions_stored(30)]
        assert [sl.stop - sl.start for sl, _ in chunks] == [30, 30, 20]
        np.testing.assert_allclose(np.concatenate([p for _, p in chunks]), frames[1], atol=1e-4)
    s = diffusion(d / "t.dcd", tmp_path / "d.json", "--topology", d / "top.data", "--type-map", "1=Li,2=P,3=S",
                  "--frame-interval-fs", 20)
    assert s["msd_ref_A2"] == pytest.approx(reference[1]["msd_ref_A2"], rel=1e-4)


def test_without_mdanalysis_the_error_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "MDAnalysis", None)  # import MDAnalysis -> ImportError
    (tmp_path / "t.xtc").write_bytes(b"\0" * 16)
    (tmp_path / "top.pdb").write_text("END\n")
    with pytest.raises(SuperionError, match=r"pip install 'superion\[formats\]'"):
        open_trajectory(tmp_path / "t.xtc", topology=tmp_path / "top.pdb")
