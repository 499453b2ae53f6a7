"""relax_structure and `superion relax`: convergence below fmax, reports, non-convergence."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.io import read

from superion.cli import main
from superion.errors import SuperionError
from superion.structures.relax import relax_structure

NABH = "M3GNet-r2SCAN-NaBH"


@pytest.fixture(scope="module")
def nabh4(shared_dir):
    return shared_dir / "structures" / "approximants" / "NaBH4_P-421c-approx.cif"


@pytest.fixture(scope="module")
def potential(models_dir):
    from superion.potential import load_potential

    return load_potential(NABH, device="cpu")


def _rattled(path, seed=1):
    from superion.structures.io import read_atoms

    atoms = read_atoms(path)
    atoms.rattle(0.05, seed=seed)
    atoms.set_cell(atoms.cell[:] * 1.02, scale_atoms=True)  # strained: the cell must move too
    return atoms


def test_relaxation_converges_below_fmax(nabh4, potential):
    atoms = _rattled(nabh4)
    start = atoms.positions.copy()
    res = relax_structure(atoms, potential.calculator(), fmax=0.05, max_steps=300)
    assert np.array_equal(atoms.positions, start)  # input untouched
    assert res.converged and 0 < res.steps <= 300
    assert res.fmax_final_eV_A < 0.05
    # independent check on the returned structure with a fresh calculator
    check = res.atoms.copy()
    check.calc = potential.calculator()
    f = check.get_forces()
    assert np.sqrt((f**2).sum(axis=1)).max() < 0.05
    # the cell is converged to the default stress tolerance (0.1 GPa), not ASE's looser fmax·N/V
    assert np.abs(check.get_stress()).max() * 160.21766208 < 0.1 + 1e-6
    assert res.max_stress_GPa < 0.1 + 1e-6
    assert res.energy_eV < res.energy_before_eV
    assert res.energy_per_atom_eV == pytest.approx(res.energy_eV / len(atoms))
    assert res.volume_after_A3 < res.volume_before_A3  # the 2 % expansion is undone
    assert res.lattice_before["a_A"] != res.lattice_after["a_A"]
    assert res.spacegroup_after["number"] is not None
    d = res.to_dict()
    assert "atoms" not in d and d["volume_change_percent"] == pytest.approx(
        100 * (res.volume_after_A3 / res.volume_before_A3 - 1))


def test_fixed_cell_keeps_volume(nabh4, potential):
    atoms = _rattled(nabh4, seed=2)
    res = relax_structure(atoms, potential.calculator(), fmax=0.1, max_steps=100, relax_cell=False, optimizer="BFGS")
    assert res.volume_after_A3 == pytest.approx(res.volume_before_A3, rel=1e-12)
    assert res.optimizer == "BFGS" and not res.relax_cell


def test_not_converged_is_reported(nabh4, potential):
    res = relax_structure(_rattled(nabh4), potential.calculator(), fmax=0.001, max_steps=3)
    assert not res.converged and res.steps <= 3 and res.fmax_final_eV_A >= 0.001


@pytest.mark.parametrize("kw", [{"fmax": 0}, {"fmax": -0.1}, {"optimizer": "SGD"}, {"max_steps": -1}])
def test_bad_settings(kw, nabh4):
    with pytest.raises(SuperionError):
        relax_structure(_rattled(nabh4), None, **kw)


def test_cli_relax_writes_cif_and_report(tmp_path, nabh4, potential, capsys):
    from ase.io import write

    src = tmp_path / "in.extxyz"
    write(src, _rattled(nabh4))
    out = tmp_path / "relaxed.cif"
    code = main(["relax", str(src), "--potential", NABH, "--out", str(out), "--fmax", "0.05", "--device", "cpu"])
    assert code == 0
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["converged"] is True and rep["fmax_final_eV_A"] < 0.05
    assert rep["potential"]["name"] == NABH and len(rep["potential"]["sha256"]) == 64
    for key in ("energy_per_atom_eV", "volume_change_percent", "lattice_before", "lattice_after",
                "spacegroup_before", "spacegroup_after", "steps"):
        assert key in rep
    assert rep["clusters_intact"] and rep["clusters_after"] == {"BH4": 4}
    back = read(out)
    assert len(back) == 24
    assert back.get_volume() == pytest.approx(rep["volume_after_A3"], rel=1e-4)


def test_cli_relax_extxyz_keeps_labels(tmp_path, nabh4, potential):
    out = tmp_path / "relaxed.extxyz"
    assert main(["relax", str(nabh4), "--potential", NABH, "--out", str(out), "--fmax", "0.1", "--fixed-cell"]) == 0
    back = read(out)
    assert "cluster_id" in back.arrays and (back.arrays["cluster_id"] >= 0).sum() == 20


def test_cli_non_convergence(tmp_path, nabh4, potential, capsys):
    out = tmp_path / "r.cif"
    args = ["relax", str(nabh4), "--potential", NABH, "--out", str(out), "--fmax", "0.0001", "--max-steps", "2"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "NOT converged" in err
    assert json.loads(out.with_suffix(".json").read_text())["converged"] is False
    assert main(args + ["--require-converged"]) == 1


# ---------------------------------------------------------------- the relax stage as a library
def test_relax_with_report_in_memory(nabh4, potential):
    from superion.atomic import file_sha256
    from superion.structures.io import read_atoms
    from superion.structures.relax import relax_with_report

    relaxed = relax_with_report(read_atoms(nabh4), potential, fmax=0.1, max_steps=50, relax_cell=False, source=nabh4)
    rep, res = relaxed.report, relaxed.result
    assert rep["command"] == "relax" and rep["output"] is None
    assert rep["input"]["sha256"] == file_sha256(nabh4)
    assert rep["settings"] == {"fmax_eV_A": 0.1, "stress_tol_GPa": 0.1, "max_steps": 50, "optimizer": "FIRE",
                               "relax_cell": False, "filter": None}
    assert rep["potential"] == potential.record()
    assert rep["energy_per_atom_eV"] == res.energy_per_atom_eV and rep["converged"] == res.converged
    assert relaxed.clusters_intact and rep["clusters_before"] == rep["clusters_after"] == {"BH4": 4}
    assert (res.atoms.arrays["cluster_id"] >= 0).sum() == 20  # labels ride along on the relaxed atoms
    assert res.converged and relaxed.warnings() == []


def test_relax_with_report_says_not_converged(nabh4, potential):
    from superion.structures.relax import relax_with_report

    relaxed = relax_with_report(_rattled(nabh4), potential, fmax=0.0001, max_steps=1, source=None)
    assert relaxed.report["input"] is None and relaxed.report["converged"] is False
    (msg,) = relaxed.warnings()
    assert "NOT converged after 1 steps" in msg and "0.0001 eV/Å" in msg


def test_relax_file_checks_before_reading_or_loading(tmp_path, nabh4, potential):
    from superion.potential import load_checked
    from superion.structures.relax import relax_file

    missing = tmp_path / "nope.cif"
    with pytest.raises(SuperionError, match="extension"):
        relax_file(missing, tmp_path / "o.txt", potential="No-Such-Model-xyz")
    with pytest.raises(SuperionError, match="fmax"):
        relax_file(missing, tmp_path / "o.cif", potential="No-Such-Model-xyz", fmax=0)
    with pytest.raises(SuperionError, match="not found"):
        relax_file(missing, tmp_path / "o.cif", potential="No-Such-Model-xyz")
    with pytest.raises(SuperionError, match="Li"):
        load_checked(potential, symbols={"Li", "Na"})
    assert load_checked(potential, symbols={"Na", "B", "H"}) is potential
    assert list(tmp_path.iterdir()) == []


def test_relax_file_writes_structure_and_report(tmp_path, nabh4, potential):
    from superion.structures.relax import relax_file

    out = tmp_path / "r.extxyz"
    relaxed = relax_file(nabh4, out, potential=potential, fmax=0.1, max_steps=20, relax_cell=False)
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["output"] == str(out) and rep == json.loads(json.dumps(relaxed.report))
    back = read(out)
    assert np.allclose(back.positions, relaxed.result.atoms.positions)
    assert "cluster_id" in back.arrays
