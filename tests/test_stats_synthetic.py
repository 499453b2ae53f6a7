"""Synthetic replicas: the documented true D holds (uncorrelated and back-hop), layouts and errors."""

from __future__ import annotations

import numpy as np
import pytest

from superion.analysis.gls import diffusion_gls, ols_line
from superion.analysis.moments import ion_spectra
from superion.analysis.synthetic import caged_only, free_walkers, lattice_hopping
from superion.errors import SuperionError


def long_time_D(run, start_frac=0.2, end_frac=0.5):
    m = ion_spectra(run.positions_A).mean_A2
    F = run.n_frames
    i0, i1 = int(start_frac * F), int(end_frac * F)
    t = np.arange(i0, i1) * run.dt_ps
    return ols_line(t, m[i0:i1])[0] / 6.0 * 1e-4


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_true_D_against_a_large_reference_simulation(p):
    """D_true = f Γ a² ⟨λ²⟩ / 6 with f = (1 − p)/(1 + p): 3000 ions x 1500 frames (~2e5 hops), long lags
    (3–7.5 ps, ≥ 12 hop times: no back-hop memory left), GLS for a 1 % estimate."""
    run = lattice_hopping(3000, 1500, 0.01, 4.0, back_hop_prob=p, store_sites=False, seed=21)
    assert run.correlation_factor == pytest.approx((1 - p) / (1 + p))
    r = diffusion_gls(run.positions_A, 0.01, 3.0, 7.5, kurtosis=False, noise="white")
    assert r.stderr_cm2_s < 0.015 * run.D_true_cm2_s
    assert abs(r.D_cm2_s - run.D_true_cm2_s) < 3 * r.stderr_cm2_s


def test_breathing_conventions():
    d = lattice_hopping(2000, 1200, 0.01, 4.0, breathing=0.03, seed=22)
    a = lattice_hopping(2000, 1200, 0.01, 4.0, breathing=0.03, unwrap="affine", seed=22)
    lam = np.einsum("fkk->fk", d.cells_A) / (d.info["sites_per_axis"] * 3.0)
    assert d.info["hop_length_scale2"] == pytest.approx(np.mean(lam[1:] ** 2), rel=1e-12)
    assert d.info["hop_length_scale2"] == pytest.approx(1 + 0.03**2 / 2, abs=2e-3)  # plus the realised mean of the AR noise
    assert long_time_D(d) == pytest.approx(d.D_true_cm2_s, rel=0.02)
    assert long_time_D(a, 0.3, 0.5) == pytest.approx(a.D_true_cm2_s, rel=0.03)  # long-time slope is unbiased
    # affine positions are lattice images of the sites in every frame; wrapping keeps them inside the cell
    w = a.wrapped_positions()
    frac = np.einsum("fnj,fjk->fnk", w, np.linalg.inv(a.cells_A))
    assert frac.min() >= 0 and frac.max() < 1
    with pytest.raises(SuperionError, match="cannot be wrapped"):
        d.wrapped_positions()


def test_layout_and_kinds():
    run = lattice_hopping(5, 50, 0.01, 3.0, seed=23)
    assert run.positions_A.shape == (5, 3, 50) and run.cells_A.shape == (50, 3, 3)
    assert run.site_index.shape == (5, 50) and run.sites_frac.shape[1] == 3
    assert run.duration_ps == pytest.approx(0.49)
    c = caged_only(4, 100, 0.01, seed=24)
    assert c.D_true_cm2_s == 0.0 and c.n_hops.sum() == 0 and c.info["kind"] == "caged"
    f = free_walkers(3, 100, 0.01, 2.0, seed=25)
    assert f.D_true_cm2_s == pytest.approx(2e-4)
    for bad in (dict(n_ions=0), dict(n_frames=1), dict(dt_ps=0.0), dict(back_hop_prob=1.0), dict(unwrap="x")):
        kw = dict(n_ions=2, n_frames=10, dt_ps=0.01, hop_rate_per_ps=1.0)
        kw.update(bad)
        with pytest.raises(SuperionError):
            lattice_hopping(kw.pop("n_ions"), kw.pop("n_frames"), kw.pop("dt_ps"), kw.pop("hop_rate_per_ps"), **kw)
