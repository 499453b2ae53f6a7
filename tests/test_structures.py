"""Structure reading/validation, `superion prepare` round trips, and bad inputs through the CLI."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from ase.io import read

from superion.cli import main
from superion.structures.clusters import ClusterLabels, label_clusters
from superion.errors import SuperionError
from superion.structures.io import read_atoms, read_pymatgen

NABH = "M3GNet-r2SCAN-NaBH"
LICL_CIF = """data_LiCl
_symmetry_space_group_name_H-M 'P 1'
_cell_length_a 5.14
_cell_length_b 5.14
_cell_length_c 5.14
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_atom_site_type_symbol
_atom_site_label
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Li Li0 0 0 0 1
Li Li1 0.5 0.5 0 1
Li Li2 0.5 0 0.5 1
Li Li3 0 0.5 0.5 1
Cl Cl0 0.5 0 0 1
Cl Cl1 0 0.5 0 1
Cl Cl2 0 0 0.5 1
Cl Cl3 0.5 0.5 0.5 1
"""


@pytest.fixture()
def approx(shared_dir):
    return shared_dir / "structures" / "approximants"


def _run(capsys, args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.err


def _assert_one_line_error(code, err, *words):
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("superion: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w.lower() in lines[0].lower()


def _nothing_written(folder):
    return sorted(p.name for p in folder.iterdir() if p.name not in ("in.cif", "garbage.cif", "licl.cif")) == []


# ---------------------------------------------------------------- reading and validation
def test_read_errors(tmp_path):
    with pytest.raises(SuperionError, match="not found"):
        read_pymatgen(tmp_path / "nope.cif")
    (tmp_path / "empty.cif").write_text("")
    with pytest.raises(SuperionError, match="empty"):
        read_pymatgen(tmp_path / "empty.cif")
    (tmp_path / "dup.cif").write_text(LICL_CIF + "Cl Cl4 0.5 0.5 0.501 1\n")
    with pytest.raises(SuperionError, match="apart"):
        read_pymatgen(tmp_path / "dup.cif")


def test_read_disordered_needs_prepare(repo_dir):
    with pytest.raises(SuperionError, match="prepare"):
        read_atoms(repo_dir / "structures" / "Li6PS5Cl_F-43m.cif")
    s = read_pymatgen(repo_dir / "structures" / "Li6PS5Cl_F-43m.cif")
    assert not s.is_ordered and s.composition.reduced_formula == "Li6PS5Cl"


def _nabh4_cell(repo_dir):
    return read_atoms(repo_dir / "structures" / "NaBH4_F-43m.cif")


def test_read_atoms_extxyz_last_frame_plain_with_labels(tmp_path, repo_dir):
    """The one reader (also md's): last frame, no calculator, no constraints, cluster labels kept."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.constraints import FixAtoms
    from ase.io import write

    first, last = _nabh4_cell(repo_dir), _nabh4_cell(repo_dir)
    last.positions += 0.01
    label_clusters(last).attach(last)
    last.set_constraint(FixAtoms(indices=[0, 1]))
    last.calc = SinglePointCalculator(last, energy=-1.0, forces=np.zeros((len(last), 3)))
    path = tmp_path / "two.extxyz"
    write(path, [first, last])
    atoms = read_atoms(path)
    assert np.allclose(atoms.positions, last.positions)
    assert atoms.calc is None and atoms.constraints == []
    assert ClusterLabels.from_atoms(atoms).counts() == {"BH4": 4}


def test_overlap_check_can_be_left_to_the_caller(tmp_path, repo_dir):
    from ase.io import write

    atoms = _nabh4_cell(repo_dir)
    na = [a.index for a in atoms if a.symbol == "Na"][0]
    atoms.append("Na")
    atoms.positions[-1] = atoms.positions[na] + [0.3, 0, 0]
    path = tmp_path / "overlap.extxyz"
    write(path, atoms)
    with pytest.raises(SuperionError, match="apart"):
        read_atoms(path)
    assert len(read_atoms(path, check_overlap=False)) == len(atoms)
    (tmp_path / "dup.cif").write_text(LICL_CIF + "Cl Cl4 0.5 0.5 0.501 1\n")
    assert len(read_pymatgen(tmp_path / "dup.cif", check_overlap=False)) == 9
    assert len(read_atoms(tmp_path / "dup.cif", check_overlap=False)) == 9


def test_check_geometry_reports_overlaps_instead_of_refusing(tmp_path, repo_dir, capsys):
    from ase.io import write

    atoms = _nabh4_cell(repo_dir)
    na = [a.index for a in atoms if a.symbol == "Na"][0]
    atoms.positions[na] = atoms.positions[na - 1 if na else 1] + [0.3, 0, 0]  # on top of its neighbour
    write(tmp_path / "bad.extxyz", atoms)
    code = main(["check-geometry", str(tmp_path / "bad.extxyz")])
    out = capsys.readouterr().out
    assert code == 1 and "problem" in out


def test_read_atoms_needs_a_periodic_cell(tmp_path):
    from ase import Atoms
    from ase.io import write

    write(tmp_path / "mol.extxyz", Atoms("BH4", positions=[[0, 0, 0], [1.2, 0, 0], [-1.2, 0, 0], [0, 1.2, 0], [0, -1.2, 0]]))
    with pytest.raises(SuperionError, match="periodic"):
        read_atoms(tmp_path / "mol.extxyz")


# ---------------------------------------------------------------- the prepare stage as a library
def test_prepare_structure_in_memory(tmp_path, approx, monkeypatch):
    from superion.atomic import file_sha256
    from superion.structures.prepare import prepare_structure

    monkeypatch.chdir(tmp_path)
    src = approx / "NaBH4_P-421c-approx.cif"
    prepared = prepare_structure(src, supercell=[1, 1, 2])
    atoms, rep = prepared.atoms, prepared.report
    assert len(atoms) == 48 and ClusterLabels.from_atoms(atoms).counts() == {"BH4": 8}
    assert rep["multiplier"] == [1, 1, 2] and rep["supercell"]["min_width_A"] is None
    assert rep["output"] is None and rep["potential"] is None
    assert rep["input"]["sha256"] == file_sha256(src) and rep["input"]["path"] == str(src.resolve())
    assert rep["input"]["ordered"] is True and rep["input"]["n_sites"] == 24
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_prepare_messages_go_to_warn(repo_dir):
    from superion.structures.prepare import prepare_structure

    src = repo_dir / "structures" / "Li6PS5Cl_F-43m.cif"
    said: list[str] = []
    rep = prepare_structure(src, supercell=[1, 1, 1], n_candidates=2, n_samples=2, seed=1, warn=said.append).report
    assert said and all("rounded" in m for m in said)
    assert said == rep["warnings"] == rep["ordering"]["warnings"]
    with pytest.warns(UserWarning, match="rounded"):  # default: Python warnings
        prepare_structure(src, supercell=[1, 1, 1], n_candidates=2, n_samples=2, seed=1)


def test_prepare_file_checks_settings_before_reading(tmp_path):
    from superion.structures.prepare import prepare_file

    missing = tmp_path / "nope.cif"
    with pytest.raises(SuperionError, match=".extxyz"):
        prepare_file(missing, tmp_path / "o.cif")
    with pytest.raises(SuperionError, match="n-candidates"):
        prepare_file(missing, tmp_path / "o.extxyz", n_candidates=0)
    with pytest.raises(SuperionError, match="not found"):
        prepare_file(missing, tmp_path / "o.extxyz")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- prepare round trips
@pytest.mark.parametrize(
    "name, mult, per_cell",
    [
        ("oNBH_Na3BH4B12H12_Cmc21-approx.cif", [2, 1, 2], {"B12H12": 4, "BH4": 4}),
        ("NaBH4_P-421c-approx.cif", [2, 2, 2], {"BH4": 4}),
    ],
)
def test_prepare_round_trip_keeps_labels(tmp_path, approx, capsys, name, mult, per_cell):
    src = approx / name
    out = tmp_path / "prep.extxyz"
    code, err = _run(capsys, ["prepare", src, "--out", out])
    assert code == 0, err
    cell = read(src)
    atoms = read(out)
    n_cells = int(np.prod(mult))
    assert len(atoms) == len(cell) * n_cells
    labels = ClusterLabels.from_atoms(atoms)
    assert labels is not None
    assert labels.counts() == {k: v * n_cells for k, v in per_cell.items()}
    # stored labels equal a fresh labelling of what was written
    fresh = label_clusters(atoms)
    assert np.array_equal(fresh.cluster_id, labels.cluster_id) and fresh.types == labels.types
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["multiplier"] == mult
    assert rep["n_atoms"] == len(atoms)
    assert min(rep["perpendicular_widths_A"]) >= 10.0
    assert rep["cluster_counts"] == labels.counts()
    assert rep["species_counts"] == dict(Counter(atoms.get_chemical_symbols()))
    assert rep["ordering"]["disordered"] is False


def test_prepare_disordered_argyrodite_is_deterministic(tmp_path, repo_dir, capsys):
    src = repo_dir / "structures" / "Li6PS5Cl_F-43m.cif"
    outs = []
    for k, seed in enumerate((7, 7)):
        out = tmp_path / f"li{k}.extxyz"
        code, err = _run(capsys, ["prepare", src, "--out", out, "--seed", seed, "--supercell", 1, 1, 1,
                                  "--n-candidates", 3])
        assert code == 0, err
        assert "rounded" in err  # 0.3849 Cl on 4 sites cannot be exact: said on stderr
        outs.append(read(out))
    a, b = outs
    assert a.get_chemical_symbols() == b.get_chemical_symbols()
    assert np.allclose(a.positions, b.positions)
    assert Counter(a.get_chemical_symbols()) == {"Li": 24, "P": 4, "S": 20, "Cl": 4}
    rep = json.loads((tmp_path / "li0.json").read_text())
    assert rep["ordering"]["seed"] == 7 and len(rep["ordering"]["candidates"]) == 3
    assert rep["cluster_counts"] == {"PS4": 4}


def test_prepare_order_in_supercell(tmp_path, repo_dir, capsys):
    out = tmp_path / "li.extxyz"
    code, err = _run(capsys, ["prepare", repo_dir / "structures" / "Li6PS5Cl_F-43m.cif", "--out", out,
                              "--order-in-supercell", "--n-samples", 4, "--n-candidates", 2])
    assert code == 0, err
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["multiplier"] == [2, 2, 2] and rep["ordering"]["ordered_in"] == "supercell"
    # 0.3849 x 32 sites = 12.3 Cl on 4a: closer to the experiment than 2 of 4 in one cell
    assert rep["ordering"]["groups"][1]["counts"]["Cl"] == 12
    assert rep["cluster_counts"] == {"PS4": 32} and rep["n_atoms"] == 416


# ---------------------------------------------------------------- bad inputs via the CLI
def test_missing_file(tmp_path, capsys):
    for cmd in (["prepare", tmp_path / "nope.cif", "--out", tmp_path / "o.extxyz"],
                ["relax", tmp_path / "nope.cif", "--potential", NABH, "--out", tmp_path / "o.cif"]):
        code, err = _run(capsys, cmd)
        _assert_one_line_error(code, err, "not found")
    assert _nothing_written(tmp_path)


def test_malformed_cif(tmp_path, capsys):
    bad = tmp_path / "garbage.cif"
    bad.write_text("data_broken\n_cell_length_a 5.0\nthis is not a cif\nloop_\n_atom_site_label\nNa1\n")
    for cmd in (["prepare", bad, "--out", tmp_path / "o.extxyz"],
                ["relax", bad, "--potential", NABH, "--out", tmp_path / "o.cif"]):
        code, err = _run(capsys, cmd)
        _assert_one_line_error(code, err, "cannot read", "garbage.cif")
    assert _nothing_written(tmp_path)


def test_element_outside_potential(tmp_path, repo_dir, capsys, models_dir):
    licl = tmp_path / "licl.cif"
    licl.write_text(LICL_CIF)
    code, err = _run(capsys, ["relax", licl, "--potential", NABH, "--out", tmp_path / "o.cif"])
    _assert_one_line_error(code, err, "Li", "universal")
    code, err = _run(capsys, ["prepare", repo_dir / "structures" / "Li6PS5Cl_F-43m.cif", "--out",
                              tmp_path / "o.extxyz", "--potential", NABH, "--rerank", 2])
    _assert_one_line_error(code, err, "Li", "universal")
    assert _nothing_written(tmp_path)


def test_unknown_model(tmp_path, approx, capsys):
    code, err = _run(capsys, ["relax", approx / "NaBH4_P-421c-approx.cif", "--potential", "No-Such-Model-xyz",
                              "--out", tmp_path / "o.cif"])
    _assert_one_line_error(code, err, "No-Such-Model-xyz")
    assert _nothing_written(tmp_path)


@pytest.mark.parametrize("width", ["0", "-5"])
def test_min_width_not_positive(tmp_path, approx, capsys, width):
    src = approx / "NaBH4_P-421c-approx.cif"
    code, err = _run(capsys, ["prepare", src, "--out", tmp_path / "o.extxyz", "--min-width-A", width])
    _assert_one_line_error(code, err, "min_width_A")
    code, err = _run(capsys, ["supercell", src, "--min-width-A", width])
    _assert_one_line_error(code, err, "min_width_A")
    assert _nothing_written(tmp_path)


@pytest.mark.parametrize("fmax", ["0", "-0.05"])
def test_fmax_not_positive(tmp_path, approx, capsys, fmax):
    code, err = _run(capsys, ["relax", approx / "NaBH4_P-421c-approx.cif", "--potential", NABH,
                              "--out", tmp_path / "o.cif", "--fmax", fmax])
    _assert_one_line_error(code, err, "fmax")
    assert _nothing_written(tmp_path)


def test_bad_output_extension_and_rerank_without_potential(tmp_path, approx, capsys):
    src = approx / "NaBH4_P-421c-approx.cif"
    code, err = _run(capsys, ["prepare", src, "--out", tmp_path / "o.cif"])
    _assert_one_line_error(code, err, ".extxyz")
    code, err = _run(capsys, ["prepare", src, "--out", tmp_path / "o.extxyz", "--rerank", 2])
    _assert_one_line_error(code, err, "--potential")
    assert _nothing_written(tmp_path)


def test_supercell_command(approx, capsys):
    code = main(["supercell", str(approx / "oNBH_Na3BH4B12H12_Cmc21-approx.cif")])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["multiplier"] == [2, 1, 2] and out["n_atoms"] == 512
