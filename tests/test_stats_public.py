"""Public-data cross-checks: kinisi's Li6PS5Cl AIMD example and pymatgen-analysis-diffusion's LGPS test data.

Provenance of the data and of the kinisi numbers: tests/data/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from superion.analysis.diffusion_stats import diffusion_statistics
from superion.analysis.gls import diffusion_gls, ols_line
from superion.analysis.moments import ion_spectra
from superion.analysis.regime import hop_length_A

DATA = Path(__file__).parent / "data"

# kinisi 2.1.0 D posterior (cm2/s, 3200 samples) on example_XDATCAR.gz, fitted from start_dt to the
# end of the run; call in tests/data/README.md (random_state=np.random.RandomState(42)).
KINISI_2_1_0 = {
    1.0: {"mean": 1.393682543617486e-05, "sd": 7.306455052537034e-07},
    2.0: {"mean": 1.3606343260636828e-05, "sd": 7.466145229426016e-07},
    4.0: {"mean": 1.1350370111545268e-05, "sd": 1.1019949760635901e-06},
}


@pytest.fixture(scope="module")
def li6ps5cl():
    d = np.load(DATA / "kinisi_li6ps5cl_li_positions.npz")
    return d["positions_A"].astype(np.float64), d["cell_A"], float(d["dt_ps"])


@pytest.mark.parametrize("start", [1.0, 2.0])
def test_gls_agrees_with_kinisi_posterior(li6ps5cl, start):
    pos, _, dt = li6ps5cl
    F = pos.shape[2]
    r = diffusion_gls(pos, dt, start, (F - 1) * dt)  # kinisi's window: start_dt to the end
    k = KINISI_2_1_0[start]
    assert abs(r.D_cm2_s - k["mean"]) < 2 * k["sd"]
    assert 1 / 1.5 < r.stderr_cm2_s / k["sd"] < 1.5


def test_kinisi_window_from_4_ps_is_the_known_outlier(li6ps5cl):
    """From 4 ps the two estimators weight the (slightly concave) long-lag MSD differently: GLS keeps
    weight near the window start, kinisi's covariance (data variances, n_i/n_j correlation) puts more
    on the late lags. Recorded, not a target: |ΔD| = 2.3 kinisi sd, uncertainties agree."""
    pos, _, dt = li6ps5cl
    r = diffusion_gls(pos, dt, 4.0, (pos.shape[2] - 1) * dt)
    k = KINISI_2_1_0[4.0]
    assert 1.5 < (r.D_cm2_s - k["mean"]) / k["sd"] < 3.0
    assert 1 / 1.5 < r.stderr_cm2_s / k["sd"] < 1.5


def test_li6ps5cl_14_ps_is_not_resolved_diffusion_by_the_default_window(li6ps5cl):
    """The default window ends at duration/3 = 4.6 ps, where the Li MSD has grown by less than one
    Li-Li hop: superion reports an upper bound, which covers kinisi's D."""
    pos, cell, dt = li6ps5cl
    # Li sites of the first frame (positions are drift-corrected Cartesian)
    frac = np.linalg.solve(cell.T, pos[:, :, 0].T).T
    h = hop_length_A(frac, cell)
    assert 2.5 < h < 3.2
    s = diffusion_statistics(pos, dt, h, species="Li")
    assert s["regime"] != "diffusive" and s["diffusivity_cm2_s"] is None
    assert s["diffusivity_upper_bound_cm2_s"] > KINISI_2_1_0[2.0]["mean"]


def test_pymatgen_lgps_conductivity_on_pymatgen_window(shared_dir):
    """pymatgen-analysis-diffusion asserts sigma = 74.165372613735684 mS/cm for its LGPS test data
    (smoothed='max': all-origin MSD at 206 lags 1.0-13.3 ps, unweighted OLS). The same lags and
    estimator here reproduce it within 1 %; superion's own verdict is that the run is immobile
    (MSD < 1 A^2, less than a quarter of a Li-Li hop squared), and GLS on that window differs by
    ~70 % because the MSD there is still the cage relaxing, not diffusion."""
    path = shared_dir / "data" / "pymatgen-analysis-diffusion" / "DiffusionAnalyzer.json"
    if not path.is_file():
        pytest.skip(f"{path} not present (see tests/data/README.md)")
    dd = json.loads(path.read_text())
    from pymatgen.core import Structure

    structure = Structure.from_dict(dd["structure"])
    disp = np.asarray(dd["displacements"], dtype=np.float64)  # (sites, steps, 3), unwrapped
    li = np.array([str(s.specie) == "Li" for s in structure])
    pos = (disp[li] - disp[~li].mean(axis=0, keepdims=True)).transpose(0, 2, 1)
    dt = dd["time_step"] * dd["step_skip"] / 1000.0  # ps
    n_li = int(li.sum())
    sp = ion_spectra(pos)
    lags = np.arange(50, 666, 3)  # pymatgen's 'max' grid: 1000 fs to 13300 fs every 60 fs
    slope = ols_line(lags * dt, sp.mean_A2[lags])[0]
    D = slope / 6.0 * 1e-4
    e, kB = 1.602176634e-19, 1.380649e-23
    sigma_mS_cm = n_li / (structure.volume * 1e-30) * e**2 * D * 1e-4 / (kB * dd["temperature"]) * 10
    assert sigma_mS_cm == pytest.approx(74.165372613735684, rel=0.01)
    h = hop_length_A(structure.frac_coords[li], structure.lattice.matrix)
    s = diffusion_statistics(pos, dt, h, species="Li")
    assert s["regime"] == "immobile"
    assert s["diffusivity_upper_bound_cm2_s"] > D
    g = diffusion_gls(pos, dt, lags[0] * dt, lags[-1] * dt, spectra=sp)
    assert g.D_cm2_s > 1.3 * D
