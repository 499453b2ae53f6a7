"""Geometry checks: every committed structure passes; deliberately broken structures are caught."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from superion.structures.clusters import label_clusters
from superion.structures.geometry import check_geometry

STRUCTURES = Path(__file__).resolve().parents[1] / "structures"


def _ordered(path: Path) -> bool:
    """False for CIFs with partial occupancies (inputs of `superion prepare`, not MD-ready)."""
    from pymatgen.core import Structure

    return Structure.from_file(path).is_ordered


CIFS = sorted(STRUCTURES.glob("*.cif"))


@pytest.mark.parametrize("path", CIFS, ids=[p.name for p in CIFS])
def test_every_structure_loads_and_passes(path):
    if not _ordered(path):
        pytest.skip(f"{path.name} has partial occupancies (ordered by `superion prepare`)")
    atoms = read(path)
    rep = check_geometry(atoms)
    assert rep.ok, rep.problems
    assert rep.total_charge == 0
    # a built structure must say where it came from
    assert path.read_text().startswith("#"), "CIF needs a provenance header"


def test_structures_folder_has_the_builder_outputs():
    names = {p.name for p in CIFS}
    for n in ("oNBH_Na3BH4B12H12_Cmc21.cif", "Na2B12H12_Pa-3.cif", "NaBH4_F-43m.cif", "Li5PS4BH4_2_F-43m.cif",
              "Na2B10H10_Fm-3m.cif"):
        assert n in names


@pytest.fixture
def nabh4():
    return read(STRUCTURES / "NaBH4_F-43m.cif")


def test_intact_structure_reports_counts(nabh4):
    rep = check_geometry(nabh4, {"BH4": 4})
    assert rep.ok, rep.problems
    assert rep.cluster_counts == {"BH4": 4}
    lo, hi = rep.bond_ranges_A["B-H"]
    assert 1.1 < lo <= hi < 1.3


def _two_bh4_tip_to_tip(gap_A: float):
    """Two BH4 in a 14 Å box with one H of each pointing at the other, H–H = gap_A; 2 Na far away."""
    from ase import Atoms

    from superion.structures.templates import template
    from superion.structures.templates import _rotation_to_z

    t = template("BH4")
    up = _rotation_to_z(t.positions[1])  # first H along +z
    down = np.diag([1.0, -1.0, -1.0]) @ up  # first H along -z
    sep = 2 * 1.21 + gap_A
    pos = np.vstack([t.placed([7, 7, 7 - sep / 2], up), t.placed([7, 7, 7 + sep / 2], down), [[1, 1, 1], [1, 7, 1]]])
    return Atoms(list(t.symbols) * 2 + ["Na", "Na"], positions=pos, cell=[14, 14, 14], pbc=True)


def test_hh_contact_between_clusters_is_caught():
    ok = check_geometry(_two_bh4_tip_to_tip(2.0))
    assert ok.ok, ok.problems
    assert ok.min_distances_A["H-H"] == pytest.approx(2.0, abs=1e-6)
    bad = check_geometry(_two_bh4_tip_to_tip(1.3))
    assert bad.cluster_counts == {"BH4": 2}  # still two clusters: only the contact is wrong
    assert [p for p in bad.problems if "H-H" in p], bad.problems


def test_broken_cluster_is_caught(nabh4):
    atoms = nabh4.copy()
    labels = label_clusters(atoms)
    k = labels.clusters_of_type("BH4")[0]
    b = [i for i in labels.members(k) if atoms[i].symbol == "B"][0]
    h = [i for i in labels.members(k) if atoms[i].symbol == "H"][0]
    atoms.positions[h] += (atoms.positions[h] - atoms.positions[b]) * 0.5  # B–H 1.2 → 1.8 Å: bond broken
    rep = check_geometry(atoms, {"BH4": 4})
    assert not rep.ok
    text = " ".join(rep.problems)
    assert "BH3" in text or "no cluster" in text


def test_stretched_bond_is_caught(nabh4):
    atoms = nabh4.copy()
    b = [a.index for a in atoms if a.symbol == "B"][0]
    h = [i for i in range(len(atoms)) if atoms[i].symbol == "H" and atoms.get_distance(b, i, mic=True) < 1.5][0]
    vec = atoms.positions[h] - atoms.positions[b]
    atoms.positions[h] = atoms.positions[b] + vec / np.linalg.norm(vec) * 1.50  # still bonded (< 1.55) but too long
    rep = check_geometry(atoms)
    assert any("B-H bond lengths" in p for p in rep.problems)


def test_charge_imbalance_and_wrong_counts_are_caught(nabh4):
    atoms = nabh4.copy()
    del atoms[[a.index for a in atoms if a.symbol == "Na"][0]]
    rep = check_geometry(atoms, {"BH4": 4})
    assert any("charge imbalance" in p for p in rep.problems)
    assert rep.total_charge == -1
    rep2 = check_geometry(nabh4, {"BH4": 4, "B12H12": 1})
    assert any("cluster counts" in p for p in rep2.problems)


def test_cation_too_close_is_caught(nabh4):
    atoms = nabh4.copy()
    na = [a.index for a in atoms if a.symbol == "Na"][0]
    h = [a.index for a in atoms if a.symbol == "H"][0]
    vec = atoms.get_distance(na, h, mic=True, vector=True)
    atoms.positions[na] += vec - vec / np.linalg.norm(vec) * 1.5
    rep = check_geometry(atoms)
    assert any("H-Na" in p for p in rep.problems)


def test_cli_check_geometry(tmp_path, nabh4):
    from superion.cli import main

    assert main(["check-geometry", str(STRUCTURES / "NaBH4_F-43m.cif"), "--expect", "BH4=4"]) == 0
    bad = nabh4.copy()
    del bad[[a.index for a in bad if a.symbol == "Na"][0]]
    bad.write(tmp_path / "bad.extxyz")
    assert main(["check-geometry", str(tmp_path / "bad.extxyz")]) == 1
    assert main(["check-geometry", str(tmp_path / "missing.cif")]) == 2
    assert main(["check-geometry", str(tmp_path / "bad.extxyz"), "--expect", "BH4"]) == 2


@pytest.mark.parametrize("path", sorted(STRUCTURES.glob("*.json")), ids=lambda p: p.name)
def test_build_records_match_their_cif(path):
    """Each builder record names its CIF, lists its candidates and the chosen one."""
    import json

    rec = json.loads(path.read_text())
    if "candidates" not in rec:
        pytest.skip("not a builder record")
    assert (STRUCTURES / rec["cif"]).is_file()
    ids = [c["id"] for c in rec["candidates"]]
    assert rec["chosen"] in ids and len(ids) == rec["n_candidates"]
    assert rec["geometry"]["ok"]
    atoms = read(STRUCTURES / rec["cif"])
    assert check_geometry(atoms, rec["recipe"].get("expected_counts")).ok
