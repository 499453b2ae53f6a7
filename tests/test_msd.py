"""Kernels (unwrap, FFT MSD, max squared displacement) against plain NumPy references."""

from __future__ import annotations

import numpy as np
import pytest

from superion.analysis.correlation import autocorrelation, fft_length
from superion.analysis.kernels import as_c64, max_sq_disp, msd_s1, power_accumulate
from superion.analysis.msd import ion_msd, msd_fft, msd_reference, per_ion_msd, spectral_weights
from superion.analysis.unwrap import collect_mobile, inverse_cells, iter_unwrapped, to_fractional, whole_shifts
from superion.trajectory import ArrayTrajectory


def fluctuating_cells(n_frames, rng, triclinic=True):
    """Cells (F, 3, 3) whose lengths and angles breathe by a few % (NPT-like)."""
    h0 = np.array([[10.0, 0.0, 0.0], [1.5, 11.0, 0.0], [0.7, -1.0, 12.0]]) if triclinic else np.diag([10.0, 11.0, 12.0])
    t = np.arange(n_frames)
    scale = 1 + 0.03 * np.sin(2 * np.pi * t / 37.0)[:, None, None] + 0.005 * rng.standard_normal((n_frames, 3, 3))
    return h0[None] * scale


def wrap(positions, cells):
    frac = to_fractional(positions, cells)
    frac -= np.floor(frac)
    return np.einsum("fnj,fjk->fnk", frac, cells)


def unwrap_reference(positions, cells):
    """Frame-to-frame fractional unwrapping, plain NumPy."""
    frac = to_fractional(positions, cells)
    ds = np.diff(frac, axis=0)
    ds -= np.round(ds)
    acc = np.concatenate([frac[:1], frac[:1] + np.cumsum(ds, axis=0)])
    return np.einsum("fnj,fjk->fnk", acc, cells)


def test_unwrap_recovers_true_path_under_fluctuating_cell():
    rng = np.random.default_rng(1)
    F, N = 300, 7
    cells = fluctuating_cells(F, rng)
    # true path: random walk in fractional space (steps ≪ half a cell), Cartesian with each cell
    frac_true = rng.random((1, N, 3)) + np.cumsum(0.02 * rng.standard_normal((F, N, 3)), axis=0)
    true = np.einsum("fnj,fjk->fnk", frac_true, cells)
    wrapped = wrap(true, cells)
    assert np.abs(wrapped - true).max() > 5.0  # the test data really crosses boundaries
    traj = ArrayTrajectory(wrapped, cells, np.arange(F) * 2.0, ["Na"] * N, np.ones(N))
    got = np.concatenate([p for _, p, _ in iter_unwrapped(traj, chunk_frames=64)])
    ref = unwrap_reference(wrapped, cells)
    # unwrapped path differs from the true one only by a constant lattice translation in fractional space
    shift = to_fractional(true[:1], cells[:1]) - to_fractional(got[:1], cells[:1])
    assert np.allclose(shift, np.round(shift), atol=1e-9)
    assert np.allclose(got + np.einsum("nj,fjk->fnk", np.round(shift[0]), cells), true, atol=1e-9)
    assert np.allclose(got, ref, atol=1e-9)


def test_inverse_cells_match_lapack():
    cells = fluctuating_cells(50, np.random.default_rng(12))
    inv, det = inverse_cells(cells)
    assert np.allclose(inv, np.linalg.inv(cells), rtol=1e-12, atol=1e-14)
    assert np.allclose(det, np.linalg.det(cells), rtol=1e-12)


def test_whole_shifts_join_split_cluster():
    # a cluster around the cell corner whose extent (0.58) exceeds half the cell from one atom
    frac0 = np.array([[0.71, 0.01, 0.01], [0.98, 0.02, 0.99], [0.03, 0.97, 0.02], [0.29, 0.99, 0.0], [0.5, 0.5, 0.5]])
    groups = np.array([0, 0, 0, 0, -1])
    s = whole_shifts(frac0, groups)
    joined = frac0[:4] + s[:4]
    centre = joined.mean(axis=0)
    assert np.abs(joined - centre).max() < 0.35
    assert np.allclose(s, np.round(s)) and np.all(s[4] == 0)


def autocorrelation_reference(x: np.ndarray) -> np.ndarray:
    """Plain NumPy O(T²): c(m) = mean over origins t < T−m of x(t) x(t+m)."""
    T = x.shape[1]
    return np.stack([(x[:, : T - m] * x[:, m:]).mean(axis=1) for m in range(T)], axis=1)


@pytest.mark.parametrize("T", [1, 2, 63, 64, 97])
def test_autocorrelation_matches_direct_double_loop(T):
    rng = np.random.default_rng(31)
    x = rng.standard_normal((4, T)) + 0.7  # a non-zero mean: nothing is centred
    got = autocorrelation(x)
    assert got.shape == (4, T) and got.dtype == np.float64
    assert np.allclose(got, autocorrelation_reference(x), rtol=1e-10, atol=1e-12)
    assert fft_length(T) >= 2 * T
    np.testing.assert_array_equal(autocorrelation(x.astype(np.float32)), autocorrelation(x.astype(np.float32).astype(np.float64)))


def test_msd_fft_matches_direct_double_loop():
    rng = np.random.default_rng(2)
    x = np.cumsum(rng.standard_normal((5, 257)), axis=1) + 100.0  # offset tests the centring
    assert np.allclose(msd_fft(x), msd_reference(x), rtol=1e-9, atol=1e-9)


def test_msd_s1_kernel_matches_numpy():
    rng = np.random.default_rng(3)
    x2 = rng.random((3, 50))
    out = np.empty_like(x2)
    msd_s1(as_c64(x2), out)
    T = x2.shape[1]
    ref = np.stack([[(x2[j, m:] + x2[j, : T - m]).sum() / (T - m) for m in range(T)] for j in range(3)])
    assert np.allclose(out, ref)


@pytest.mark.parametrize("T", [120, 121])  # even and odd FFT lengths
def test_ion_msd_chunked_equals_unchunked_and_collective(T):
    rng = np.random.default_rng(4)
    disp = np.cumsum(rng.standard_normal((9, 3, T)), axis=2) + 50.0
    w = rng.standard_normal(50)  # any weights over lags 10..59
    a = ion_msd(disp, fit_lags=slice(10, 60), fit_weights=w)
    b = ion_msd(disp, fit_lags=slice(10, 60), fit_weights=w, max_bytes=1)  # smallest chunks, a partial last one
    assert np.allclose(a.mean, b.mean) and np.allclose(a.per_ion_fit, b.per_ion_fit)
    ref = msd_reference(disp.reshape(27, T)).reshape(9, 3, T)
    assert np.allclose(a.per_dir, ref.mean(axis=0).T)
    assert np.allclose(a.mean, ref.sum(axis=1).mean(axis=0))
    # each ion's weighted sum over the window, without any per-ion MSD curve
    assert np.allclose(a.per_ion_fit, ref.sum(axis=1)[:, 10:60] @ w, rtol=1e-9, atol=1e-8)
    coll = msd_reference(disp.sum(axis=0)).sum(axis=0) / 9
    assert np.allclose(a.collective, coll)
    assert np.allclose(per_ion_msd(disp, slice(10, 60), max_bytes=1), ref.sum(axis=1)[:, 10:60])
    # float32 displacements (superion's trajectory.h5) give the same numbers to float32 precision
    c = ion_msd(disp.astype(np.float32), fit_lags=slice(10, 60), fit_weights=w)
    assert np.allclose(c.per_ion_fit, a.per_ion_fit, rtol=1e-4, atol=1e-3)
    assert np.allclose(c.mean, a.mean, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("n_fft", [64, 63])
def test_spectral_weights_are_the_adjoint_of_irfft(n_fft):
    from scipy.fft import irfft, rfft

    rng = np.random.default_rng(8)
    g = rng.standard_normal(n_fft // 2)
    p = np.abs(rfft(rng.standard_normal(n_fft))) ** 2  # a real (power) spectrum
    direct = g @ irfft(p, n=n_fft)[: len(g)]
    assert spectral_weights(g, n_fft) @ p == pytest.approx(direct, rel=1e-12)


def test_power_accumulate_kernel_matches_numpy():
    rng = np.random.default_rng(9)
    spec = rng.standard_normal((12, 33)) + 1j * rng.standard_normal((12, 33))
    g_hat = rng.standard_normal(33)
    p_dir = np.ones((3, 33))
    s2 = np.empty(4)
    power_accumulate(spec, g_hat, p_dir, s2)
    power = np.abs(spec) ** 2
    assert np.allclose(p_dir, 1.0 + power.reshape(4, 3, 33).sum(axis=0))
    assert np.allclose(s2, power.reshape(4, 3, 33).sum(axis=1) @ g_hat)


def test_max_sq_disp_kernel_matches_numpy():
    rng = np.random.default_rng(5)
    disp = np.cumsum(rng.standard_normal((6, 3, 80)), axis=2)
    out = np.zeros(6)
    max_sq_disp(as_c64(disp), out)
    ref = ((disp - disp[:, :, :1]) ** 2).sum(axis=1).max(axis=1)
    assert np.allclose(out, ref)


@pytest.mark.parametrize("wrapped", [True, False])
def test_collect_mobile_removes_mass_weighted_framework_drift(wrapped):
    rng = np.random.default_rng(6)
    F, N = 200, 12
    cells = fluctuating_cells(F, rng, triclinic=False)
    mobile = np.arange(4)
    masses = np.array([23.0] * 4 + [10.8] * 4 + [1.0] * 4)
    base = rng.random((N, 3)) * 10
    # framework vibrates around sites; the whole system drifts by v·t; mobile ions also random-walk
    vib = 0.05 * rng.standard_normal((F, N, 3))
    vib[:, 4:] -= np.einsum("fnk,n->fk", vib[:, 4:], masses[4:] / masses[4:].sum())[:, None, :]  # framework COM fixed
    walk = np.zeros((F, N, 3))
    walk[:, :4] = np.cumsum(0.05 * rng.standard_normal((F, 4, 3)), axis=0)
    drift = np.arange(F)[:, None] * np.array([0.01, -0.02, 0.005])
    true = base + vib + walk + drift[:, None, :]
    pos = wrap(true, cells) if wrapped else true
    traj = ArrayTrajectory(pos, cells, np.arange(F) * 1.0, ["Na"] * 4 + ["B"] * 4 + ["H"] * 4, masses, wrapped=wrapped)
    mob = collect_mobile(traj, mobile, chunk_frames=50)
    expected = (true[:, :4] - true[:1, :4] - drift[:, None, :]).transpose(1, 2, 0)
    assert mob.drift_method == "framework"
    assert np.allclose(mob.drift_A, drift, atol=1e-9)
    assert np.allclose(mob.disp_A, expected, atol=1e-9)
    assert np.allclose(mob.volumes_A3, np.abs(np.linalg.det(cells)))
    fw_ref = np.linalg.norm(true[:, 4:] - true[:1, 4:] - drift[:, None, :], axis=-1).max()
    assert mob.max_framework_disp_A == pytest.approx(fw_ref)
    # the statistics gathered on the way: charge displacement and per-ion max squared displacement
    assert np.allclose(mob.summed_A, expected.sum(axis=0), atol=1e-9)
    assert np.allclose(mob.max_sq_disp_A2, (expected**2).sum(axis=1).max(axis=1))


def test_collect_mobile_without_framework_falls_back_to_none():
    rng = np.random.default_rng(7)
    pos = np.cumsum(0.1 * rng.standard_normal((30, 3, 3)), axis=0) + 5
    traj = ArrayTrajectory(pos, np.eye(3) * 10, np.arange(30.0), ["Na"] * 3, np.full(3, 23.0))
    mob = collect_mobile(traj, np.arange(3))
    assert mob.drift_method == "none"
    assert np.allclose(mob.disp_A, (pos - pos[:1]).transpose(1, 2, 0), atol=1e-9)



@pytest.mark.parametrize("raw_chunks", [True, False])
@pytest.mark.parametrize("wrapped", [True, False])
def test_collect_mobile_from_float32_h5_matches_float64_arrays(tmp_path, monkeypatch, wrapped, raw_chunks):
    """The streaming path of superion's own files: float32 frames read chunk by chunk (raw
    HDF5 chunks, or read_direct into one reused buffer; a partial last chunk included) give
    the float64 result to float32 precision, and the displacements stay float32."""
    import h5py

    import superion.trajectory.h5md as st
    from superion.trajectory import H5TrajectoryWriter, open_trajectory

    if not raw_chunks:
        monkeypatch.setattr(st, "_raw_chunks_readable", lambda ds: False)

    rng = np.random.default_rng(11)
    F, N = 157, 10
    cells = fluctuating_cells(F, rng)
    masses = np.array([23.0] * 3 + [10.8] * 3 + [1.0] * 4)
    true = rng.random((N, 3)) * 8 + np.cumsum(0.08 * rng.standard_normal((F, N, 3)), axis=0)
    pos = (wrap(true, cells) if wrapped else true).astype(np.float32)
    symbols = ["Na"] * 3 + ["B"] * 3 + ["H"] * 4
    w = H5TrajectoryWriter.create(tmp_path / "t.h5", symbols=symbols, numbers=np.array([11] * 3 + [5] * 3 + [1] * 4),
                                  masses_amu=masses, metadata={}, labels=None, temperature_K=500.0)
    for i in range(F):
        w.append(i, 2.0 * i, pos[i], cells[i])
    w.close()
    with h5py.File(tmp_path / "t.h5", "r+") as f:
        f["parameters/superion"].attrs["wrapped"] = wrapped
    with open_trajectory(tmp_path / "t.h5") as traj:
        assert st._raw_chunks_readable(traj._pos) == raw_chunks
        got = collect_mobile(traj, np.arange(3), chunk_frames=40)
    ref = collect_mobile(ArrayTrajectory(pos.astype(np.float64), cells, np.arange(F) * 2.0, symbols, masses, wrapped=wrapped),
                         np.arange(3), chunk_frames=F)
    assert got.disp_A.dtype == np.float32 and got.disp_A.shape == (3, 3, F)
    assert np.allclose(got.disp_A, ref.disp_A, atol=2e-5)
    assert np.allclose(got.drift_A, ref.drift_A, atol=2e-5)
    assert got.max_framework_disp_A == pytest.approx(ref.max_framework_disp_A, abs=1e-4)
    # and that is the true path (frame 0 as origin) up to the drift
    expected = (true[:, :3] - true[:1, :3] - ref.drift_A[:, None, :]).transpose(1, 2, 0)
    assert np.allclose(got.disp_A, expected, atol=1e-4)
