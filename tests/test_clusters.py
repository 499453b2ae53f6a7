"""Cluster labelling from connectivity, including on thermally rattled structures."""

from __future__ import annotations

import numpy as np
import pytest
from ase.io import read

from superion.structures.clusters import ClusterLabels, cluster_name, label_clusters


@pytest.mark.parametrize(
    "name, expected",
    [
        ("oNBH_Na3BH4B12H12_Cmc21-approx.cif", {"B12H12": 4, "BH4": 4}),
        ("Na2B12H12_Pa-3-approx.cif", {"B12H12": 4}),
        ("NaBH4_P-421c-approx.cif", {"BH4": 4}),
    ],
)
def test_approximants_labelled(shared_dir, name, expected):
    atoms = read(shared_dir / "structures" / "approximants" / name)
    labels = label_clusters(atoms)
    assert labels.counts() == expected
    # every B and H belongs to a cluster, no Na does
    symbols = np.array(atoms.get_chemical_symbols())
    assert np.all(labels.cluster_id[symbols != "Na"] >= 0)
    assert np.all(labels.cluster_id[symbols == "Na"] == -1)


def test_labels_survive_thermal_rattle(shared_dir):
    atoms = read(shared_dir / "structures" / "approximants" / "oNBH_Na3BH4B12H12_Cmc21-approx.cif")
    ref = label_clusters(atoms)
    rng = np.random.default_rng(0)
    for _ in range(5):
        hot = atoms.copy()
        # 0.05 Å per component (0.09 Å rms per atom, ~0.07 Å rms bond stretch): B–H stretch
        # in 800 K MD is ~0.05 Å rms, so this is a hotter-than-800 K test
        hot.positions += rng.normal(scale=0.05, size=hot.positions.shape)
        hot.cell = hot.cell * (1 + rng.normal(scale=0.01))
        got = label_clusters(hot)
        assert got.types == ref.types
        assert np.array_equal(got.cluster_id, ref.cluster_id)


def test_broken_cluster_is_not_called_intact(shared_dir):
    atoms = read(shared_dir / "structures" / "approximants" / "NaBH4_P-421c-approx.cif")
    labels = label_clusters(atoms)
    k = labels.clusters_of_type("BH4")[0]
    h = [i for i in labels.members(k) if atoms[i].symbol == "H"][0]
    b = [i for i in labels.members(k) if atoms[i].symbol == "B"][0]
    atoms.positions[h] = atoms.positions[b] + (atoms.positions[h] - atoms.positions[b]) * 2.0
    broken = label_clusters(atoms)
    assert "BH3" in broken.types
    assert broken.counts().get("BH4") == 3


def test_names_and_roundtrip(tmp_path):
    assert cluster_name(["C"] + ["B"] * 11 + ["H"] * 12) == "CB11H12"
    assert cluster_name(["P", "S", "S", "S", "S"]) == "PS4"
    assert cluster_name(["B", "B", "H"]) == "B2H"
    from ase.build import bulk
    from ase.io import write

    atoms = bulk("NaCl", "rocksalt", a=5.6) * (2, 1, 1)
    labels = ClusterLabels(np.array([-1, 0, -1, 1]), ["X", "Y"])
    labels.attach(atoms)
    write(tmp_path / "a.extxyz", atoms)
    back = ClusterLabels.from_atoms(read(tmp_path / "a.extxyz"))
    assert back.types == ["X", "Y"] and np.array_equal(back.cluster_id, labels.cluster_id)
