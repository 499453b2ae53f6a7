"""Structure builder: symmetry expansion, voids, Ewald, Monte Carlo, recipes, determinism, a cheap relaxation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from superion.structures import build as B
from superion.errors import SuperionError
from superion.structures.symmetry import space_group_label
from superion.structures.templates import axis_rotation

RECIPES = Path(__file__).resolve().parents[1] / "structures" / "recipes"


def test_ewald_reproduces_rocksalt_madelung_constant():
    a = 5.64
    lat = B.lattice_from([a, a, a])
    na = B.expand_sites([[0, 0, 0]], 225)
    cl = B.expand_sites([[0.5, 0.5, 0.5]], 225)
    e = B.ewald_energy_eV(lat, np.vstack([na, cl]), [1] * 4 + [-1] * 4)
    madelung = -e / 4 / (B.COULOMB_EV_A / (a / 2))  # per ion pair, in units of e²/r0
    assert madelung == pytest.approx(1.747565, abs=1e-4)


def test_ewald_rejects_charged_sets():
    with pytest.raises(SuperionError, match="do not sum to zero"):
        B.ewald_energy_eV(np.eye(3) * 5, np.zeros((1, 3)), [1])


def test_expand_clusters_f43m_keeps_tetrahedra():
    lat = B.lattice_from([6.16] * 3)
    sy, pos, cen = B.expand_clusters(lat, [B.ClusterPlacement("BH4", np.array([0.5, 0.5, 0.5]))], 216)
    assert len(cen) == 4 and sy.count("B") == 4 and sy.count("H") == 16
    got = sorted(tuple(np.round(c, 3)) for _, c in cen)
    assert got == sorted([(0.5, 0.5, 0.5), (0.5, 0.0, 0.0), (0.0, 0.5, 0.0), (0.0, 0.0, 0.5)])
    # every B has its 4 H at 1.21 Å
    atoms = B.make_atoms(lat, sy, pos)
    d = atoms.get_all_distances(mic=True)
    b = [i for i, s in enumerate(sy) if s == "B"]
    h = [i for i, s in enumerate(sy) if s == "H"]
    assert np.allclose(np.sort(d[np.ix_(b, h)], axis=1)[:, :4], 1.21, atol=1e-6)


def test_orientation_breaking_site_symmetry_is_refused():
    lat = B.lattice_from([6.16] * 3)
    bad = B.ClusterPlacement("BH4", np.array([0.5, 0.5, 0.5]), axis_rotation([0, 0, 1], 30))
    with pytest.raises(SuperionError, match="breaks the site symmetry"):
        B.expand_clusters(lat, [bad], 216)


def test_tetrahedral_voids_of_fcc():
    a = 8.0
    lat = B.lattice_from([a] * 3)
    centres = [("BH4", f) for f in B.expand_sites([[0, 0, 0]], 225)]
    voids = B.tetrahedral_voids(lat, centres)
    # regular tetrahedral voids sit a*sqrt(3)/4 from their 4 corners; octahedra are split into slivers
    tet = [v for v in voids if np.isclose(v.min_corner_A, a * np.sqrt(3) / 4, atol=1e-6)]
    fr = sorted(tuple(np.round(v.frac, 3)) for v in tet)
    assert len(tet) == 8
    assert all(set(x) <= {0.25, 0.75} for x in fr)
    assert all(v.label == "BH4:4" for v in tet)
    orbits = B.void_orbits(tet, 225)
    assert len(orbits) == 1 and len(orbits[0]) == 8


def test_monte_carlo_is_deterministic_and_respects_distance():
    lat = B.lattice_from([10.01] * 3)
    sites = B.expand_sites([[0.3202, 0.0183, 0.67975]], 216)
    anions = B.expand_sites([[0, 0, 0.5]], 216)
    phi = B.ewald_pair_matrix(lat, np.vstack([anions, sites]))
    field = phi[4:, :4] @ np.full(4, -3.0)
    dist = B.min_image_distances(lat, sites, sites)
    s1, e1 = B.select_sites_mc(phi[4:, 4:], field, 12, dist, min_dist_A=2.2, seed=5, n_steps=800)
    s2, e2 = B.select_sites_mc(phi[4:, 4:], field, 12, dist, min_dist_A=2.2, seed=5, n_steps=800)
    assert s1 == s2 and e1 == e2
    sub = dist[np.ix_(s1, s1)][np.triu_indices(12, 1)]
    assert sub.min() >= 2.2
    # annealing beats a random admissible pick
    rnd = list(np.random.default_rng(0).choice(len(sites), 12, replace=False))
    e_rnd = field[rnd].sum() + 0.5 * phi[4:, 4:][np.ix_(rnd, rnd)].sum()
    assert e1 < e_rnd


def test_soft_relaxation_moves_cation_out_of_contact():
    lat = B.lattice_from([6.16] * 3)
    sy, pos, _ = B.expand_clusters(lat, [B.ClusterPlacement("BH4", np.array([0.5, 0.5, 0.5]))], 216)
    atoms = B.make_atoms(lat, sy, pos, [("Na", np.array([0.5, 0.5, 0.75]))])  # Na 1.5 Å from a B
    na = len(atoms) - 1
    frame = atoms.positions[:na].copy()
    before = atoms.get_distances(na, range(na), mic=True).min()
    B.relax_ions_soft(atoms, [na])
    after = atoms.get_distances(na, range(na), mic=True).min()
    assert after > before + 0.3
    assert np.allclose(atoms.positions[:na], frame)  # only the cation moved


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_recipes_load(path):
    r = B.load_recipe(path)
    assert r["potential"]
    lat = B.lattice_from(r["cell"])
    assert abs(np.linalg.det(lat)) > 50


def test_candidates_deterministic_from_seed():
    r = B.load_recipe(RECIPES / "NaBH4_P42nmc.yaml")
    c1, c2 = B.build_candidates(r), B.build_candidates(r)
    assert len(c1) == 16
    assert [c["id"] for c in c1] == [c["id"] for c in c2]
    assert all(np.allclose(a["atoms"].positions, b["atoms"].positions) for a, b in zip(c1, c2))
    r2 = B.load_recipe(RECIPES / "Na2B12H12_bcc.yaml")
    r2["clusters"][0]["orientations"] = {"random": 2}
    r2["clusters"][1]["orientations"] = {"random": 1}
    r2["cations"]["configurations"] = {"mc_seeds": 2, "mc_steps": 200, "keep": 2}
    ids_a = [c["id"] for c in B.build_candidates(r2)]
    pos_a = B.build_candidates(r2)[0]["atoms"].positions
    r2["seed"] = 1
    pos_b = B.build_candidates(r2)[0]["atoms"].positions
    assert ids_a == [c["id"] for c in B.build_candidates({**r2, "seed": 0})]
    assert not np.allclose(pos_a, pos_b)  # another seed, other orientations/arrangements


def test_bad_recipe_is_user_error(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: x\ncell: [5, 5, 5]\npotential: M\n")
    with pytest.raises(SuperionError, match="missing key 'clusters'"):
        B.load_recipe(p)
    p.write_text("name: x\ncell: [5, 5, 5]\npotential: M\nclusters: [{name: B7H7, centre: [0, 0, 0]}]\n")
    with pytest.raises(SuperionError, match="unknown cluster template"):
        B.load_recipe(p)
    with pytest.raises(SuperionError, match="not found"):
        B.load_recipe(tmp_path / "none.yaml")


def test_cli_dry_run(capsys):
    from superion.cli import main

    assert main(["build", str(RECIPES / "NaBH4_P42nmc.yaml"), "--out", "unused.cif", "--dry-run"]) == 0
    assert "16 candidates" in capsys.readouterr().out


def test_write_cif_header_roundtrip(tmp_path):
    from ase.io import read

    lat = B.lattice_from([6.16] * 3)
    sy, pos, _ = B.expand_clusters(lat, [B.ClusterPlacement("BH4", np.array([0.5, 0.5, 0.5]))], 216)
    atoms = B.make_atoms(lat, sy, pos, [("Na", f) for f in B.expand_sites([[0, 0, 0]], 216)])
    B.write_cif(atoms, tmp_path / "x.cif", ["line one", "line two"], symprec=0.01)
    text = (tmp_path / "x.cif").read_text()
    assert text.startswith("# line one\n# line two\n") and "F-43m (216)" in text
    back = read(tmp_path / "x.cif")
    assert len(back) == 24 and space_group_label(back, 0.01) == "F-43m (216)"


def test_cheap_relaxation_of_built_nabh4_stays_sane():
    """24-atom NaBH4 from the builder, 15 FIRE steps with M3GNet-r2SCAN-NaBH: energy drops, cell sane."""
    pytest.importorskip("matgl")
    from superion.structures.geometry import check_geometry
    from superion.potential import get_calculator
    from superion.structures.relax import relax_structure

    lat = B.lattice_from([6.30] * 3)  # deliberately 3 % too large
    sy, pos, _ = B.expand_clusters(lat, [B.ClusterPlacement("BH4", np.array([0.5, 0.5, 0.5]))], 216)
    atoms = B.make_atoms(lat, sy, pos, [("Na", f) for f in B.expand_sites([[0, 0, 0]], 216)])
    calc = get_calculator("M3GNet-r2SCAN-NaBH", device="cpu", threads=1)
    res = relax_structure(atoms, calc, fmax=0.01, max_steps=15, relax_cell=True)
    assert res.energy_eV < res.energy_before_eV
    assert -5.0 < res.energy_per_atom_eV < -4.0
    assert 0.9 < res.volume_after_A3 / res.volume_before_A3 < 1.02
    assert check_geometry(res.atoms, {"BH4": 4}).ok
