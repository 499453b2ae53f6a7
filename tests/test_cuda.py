"""The CUDA path: parity and fingerprint on the GPU, a single run and a batch that agree.

Skipped without a CUDA GPU. ``SUPERION_TEST_DEVICE=cpu`` runs the same checks on the CPU (how
``bench/gpu_check.sh --cpu`` proves the script on a machine without a GPU). On CUDA nothing is
bitwise (atomic scatter-adds sum in varying order), so runs are compared to float32 tolerance.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

DEVICE = os.environ.get("SUPERION_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                reason="no CUDA GPU (SUPERION_TEST_DEVICE=cpu runs these checks on the CPU)")

MODEL = "M3GNet-r2SCAN-NaBH"
ONBH = "structures/approximants/oNBH_Na3BH4B12H12_Cmc21-approx.cif"
NABH4 = "structures/approximants/NaBH4_P-421c-approx.cif"


def quiet(*_a):
    pass


def test_parity_and_fingerprint_on_device(shared_dir):
    from superion.potential import check_parity, load_potential

    lp = load_potential(MODEL, device=DEVICE)  # the fingerprint self-check runs here, on the device
    assert lp.device.startswith(DEVICE) and lp.self_check_result is not None
    assert next(lp.potential.parameters()).device.type == DEVICE
    report = check_parity(MODEL, device=DEVICE)
    assert report.ok, json.dumps(report.to_dict()["rows"], indent=1)


def test_device_forces_match_cpu_alone_and_batched(shared_dir):
    from ase.io import read

    from superion.potential import load_potential

    dev, cpu = (load_potential(MODEL, device=d).batch_evaluator() for d in (DEVICE, "cpu"))
    base = read(shared_dir / ONBH)
    rng = np.random.default_rng(0)
    structs = [base.copy() for _ in range(3)]
    for a in structs:
        a.positions += rng.normal(scale=0.03, size=a.positions.shape)
    ref = [cpu([a])[0] for a in structs]
    for got in (dev([structs[0]]), dev(structs)):
        for g, r in zip(got, ref):
            assert g["forces"].dtype == np.float32 and g["forces"].shape == r["forces"].shape
            np.testing.assert_allclose(g["forces"], r["forces"], rtol=0, atol=2e-4)
            np.testing.assert_allclose(g["stress"], r["stress"], rtol=0, atol=1e-6)
            assert abs(g["energy"] - r["energy"]) < 5e-3


def test_single_run_and_batch_match_on_device(shared_dir, tmp_path):
    """A replica of a 3-replica batch follows the single run of the same settings (20 NPT steps)."""
    from superion.md import MDSettings, run_md
    from superion.md.batch import batch_replicas, run_md_batch
    from superion.trajectory import open_trajectory

    cif = shared_dir / NABH4
    base = MDSettings(temperature_K=500, steps=20, equilibration_steps=0, ensemble="npt", save_every=5,
                      trajectory_dtype="float64", seed=3)
    reps = batch_replicas(tmp_path / "batch", base, [400, 500, 600])
    res = run_md_batch(cif, reps, potential=MODEL, device=DEVICE, threads=1, log=quiet, batched_graph=True)
    assert not res.failed and res.largest_batch == 3
    run_md(cif, tmp_path / "single", reps[1].settings, potential=MODEL, device=DEVICE, threads=1, log=quiet)
    with open_trajectory(reps[1].out_dir) as a, open_trajectory(tmp_path / "single") as b:
        assert a.metadata["potential"]["device"].startswith(DEVICE)
        np.testing.assert_array_equal(a.steps, b.steps)
        assert np.abs(a.positions() - b.positions()).max() < 1e-4  # float32 forces, 20 steps
        assert np.abs(a.cells() - b.cells()).max() < 1e-4
