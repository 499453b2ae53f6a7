"""Hop counting (exact on known trajectories, NPT cell, rattling not counted), Poisson intervals, f."""

from __future__ import annotations

import numpy as np
import pytest

from superion.analysis.hops import (
    assign_sites,
    assign_sites_reference,
    count_hops,
    filter_residence,
    poisson_interval,
    poisson_upper,
)
from superion.analysis.gls import diffusion_gls
from superion.analysis.synthetic import lattice_hopping
from superion.errors import SuperionError

A = 3.0  # site spacing, Å


def breathing(F, amp=0.03):
    t = np.arange(F)
    s = 1 + amp * np.sin(2 * np.pi * t / 37.0)
    return np.eye(3)[None] * (4 * A) * s[:, None, None]


def hand_trajectory():
    """Two ions on a 4x4x4 simple-cubic grid of sites (fractional (i+0.5)/4) in a breathing cell.

    ion 0: hops +x at frame 10, +y at 25, back -y at 40 (3 hops); between them it rattles, once
           swinging 1.6 Å towards a neighbour (outside that neighbour's 0.9 Å core) — not a hop.
    ion 1: never hops; at frames 30-31 it flickers into a neighbour's core for 2 frames and back
           (counts as 2 hops without a residence filter, 0 with >= 3 frames)."""
    F = 60
    cells = breathing(F)
    site = np.zeros((2, F, 3))
    site[0, :] = [1, 1, 1]
    site[0, 10:, 0] += 1
    site[0, 25:, 1] += 1
    site[0, 40:, 1] -= 1
    site[1, :] = [2, 2, 2]
    frac = (site + 0.5) / 4
    offs = np.zeros((2, F, 3))  # Cartesian offsets from the site, Å
    rng = np.random.default_rng(0)
    offs += rng.normal(0, 0.08, offs.shape)
    offs[0, 18] = [0.0, 0.0, 1.6]  # swing towards the +z neighbour: 1.4 Å from it, outside its core
    offs[1, 30:32] = [0.0, A - 0.3, 0.0]  # flicker into the +y neighbour's core
    pos = np.einsum("nfj,fjk->nkf", frac, cells) + offs.transpose(0, 2, 1)
    g = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return pos, cells, (g + 0.5) / 4


def test_hop_counts_exact_with_breathing_cell_and_rattling():
    pos, cells, sites = hand_trajectory()
    h = count_hops(pos, cells, sites, 0.01, r_core_A=0.9)
    assert h.n_hops_per_ion.tolist() == [3, 2]  # the flicker counts without a residence filter
    h3 = count_hops(pos, cells, sites, 0.01, r_core_A=0.9, min_residence_frames=3)
    assert h3.n_hops_per_ion.tolist() == [3, 0]
    assert h3.events[:, 1].tolist() == [10, 25, 40]  # frames at which ion 0 arrived
    # hop lengths in the cell of the hop's frame (breathing ±3 %)
    scale = cells[[10, 25, 40], 0, 0] / (4 * A)
    assert np.allclose(h3.hop_lengths_A, A * scale)
    s = h3.summary()
    assert s["n_ions_hopped"] == 1 and s["n_hops"] == 3
    rate = 3 / (2 * 0.59e-12)
    assert s["hop_rate_per_s"] == pytest.approx(rate)
    lo, hi = poisson_interval(3)
    assert s["hop_rate_ci95_per_s"] == pytest.approx([lo / (2 * 0.59e-12), hi / (2 * 0.59e-12)])


def test_kernel_matches_brute_force_reference_and_truth():
    run = lattice_hopping(12, 400, 0.01, 4.0, rattle_rms_A=0.2, unwrap="affine", breathing=0.03, seed=11)
    a = assign_sites(run.positions_A, run.cells_A, run.sites_frac, 0.9)
    b = assign_sites_reference(run.positions_A, run.cells_A, run.sites_frac, 0.9)
    assert np.array_equal(a, b)
    assert np.mean(a == run.site_index) > 0.999
    # wrapped positions (what a trajectory file stores) give the same sites
    w = run.wrapped_positions().transpose(1, 2, 0)
    assert np.array_equal(assign_sites(w, run.cells_A, run.sites_frac, 0.9), a)


def test_hop_counts_on_synthetic_hopping_match_the_generated_hops():
    run = lattice_hopping(50, 5000, 0.01, 0.5, rattle_rms_A=0.2, unwrap="affine", seed=12)
    h = count_hops(run.positions_A, run.cells_A, run.sites_frac, run.dt_ps)
    # exact against the site changes visible at frame resolution (two hops inside one frame
    # interval, probability ~(ΓΔt)²/2 per frame, show up as one change or none)
    visible = np.count_nonzero(np.diff(run.site_index, axis=1), axis=1)
    assert h.n_hops_per_ion.tolist() == visible.tolist()
    assert 0 <= run.n_hops.sum() - h.n_hops <= 12
    assert h.rate_per_s == pytest.approx(0.5e12, rel=0.1)


def test_correlation_factor_of_back_hops():
    p = 0.4  # f = 0.6/1.4 = 0.4286
    run = lattice_hopping(200, 6000, 0.01, 2.0, back_hop_prob=p, rattle_rms_A=0.15, unwrap="affine", breathing=0.0,
                          cell_noise=0.0, seed=13)
    h = count_hops(run.positions_A, run.cells_A, run.sites_frac, run.dt_ps)
    D = diffusion_gls(run.positions_A, run.dt_ps, 5.0, run.duration_ps / 3)
    f = h.correlation_factor(D.D_cm2_s, D.ci95_cm2_s)
    assert f["correlation_factor"] == pytest.approx((1 - p) / (1 + p), rel=0.1)
    lo, hi = f["correlation_factor_ci95"]
    assert lo < (1 - p) / (1 + p) < hi


def test_poisson_intervals_against_known_values():
    # Garwood two-sided 95 %: 0 events -> [0, 3.6889]; one-sided 95 % upper limit 2.9957
    assert poisson_interval(0) == pytest.approx((0.0, 3.68888), abs=1e-5)
    assert poisson_upper(0) == pytest.approx(-np.log(0.05), rel=1e-9)
    lo, hi = poisson_interval(10)
    assert (lo, hi) == pytest.approx((4.7954, 18.3904), abs=1e-4)
    lo1, hi1 = poisson_interval(1)
    assert (lo1, hi1) == pytest.approx((0.025318, 5.571643), abs=1e-5)


def test_zero_hops_give_an_upper_rate():
    run = lattice_hopping(10, 300, 0.01, 0.0, rattle_rms_A=0.2, unwrap="affine", seed=14)
    h = count_hops(run.positions_A, run.cells_A, run.sites_frac, run.dt_ps)
    s = h.summary()
    assert s["n_hops"] == 0 and s["hop_rate_ci95_per_s"][0] == 0.0
    assert s["hop_rate_upper95_per_s"] == pytest.approx(2.9957 / (10 * 2.99e-12), rel=1e-3)
    assert h.correlation_factor(1e-6)["correlation_factor"] is None


def test_residence_filter_semantics():
    a = np.array([[0, 0, 1, 1, 0, 0, 2, 2, 2, 2, -1, 2]])
    assert filter_residence(a, 1).tolist() == [[0, 0, 1, 1, 0, 0, 2, 2, 2, 2, 2, 2]]
    assert filter_residence(a, 3).tolist() == [[0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2]]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(pos=np.zeros((0, 3, 10))), "no mobile ions"),
        (dict(pos=np.zeros((2, 3, 1))), "1 frame"),
        (dict(r_core_A=0.0), "core radius must be positive"),
        (dict(r_core_A=-1.0), "core radius must be positive"),
        (dict(sites=np.zeros((0, 3))), "sites must be"),
        (dict(cells=np.eye(3)[None].repeat(3, 0)), "cells must have shape"),
        (dict(min_residence_frames=0), "minimum residence"),
        (dict(dt_ps=0.0), "frame interval must be positive"),
    ],
)
def test_bad_input(kwargs, match):
    pos = kwargs.get("pos", np.zeros((2, 3, 10)))
    F = pos.shape[2]
    cells = kwargs.get("cells", np.eye(3)[None].repeat(F, 0) * 6.0)
    sites = kwargs.get("sites", np.array([[0.25, 0.25, 0.25], [0.75, 0.75, 0.75]]))
    with pytest.raises(SuperionError, match=match):
        count_hops(pos, cells, sites, kwargs.get("dt_ps", 0.01), r_core_A=kwargs.get("r_core_A", 0.9),
                   min_residence_frames=kwargs.get("min_residence_frames", 2))
