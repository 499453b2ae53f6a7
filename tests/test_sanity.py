"""Physical sanity of trajectory frames (superion.trajectory.sanity) and where analysis applies it:
the streaming kernels measure the same steps as the NumPy reference, real dynamics passes,
NaN/inf and impossible jumps are refused with the frame and the atom named."""

from __future__ import annotations

import numpy as np
import pytest

from superion.analysis.kernels import as_c64, collect_chunk, unwrap_chunk
from superion.analysis.unwrap import collect_mobile, inverse_cells, iter_unwrapped, to_fractional
from superion.errors import SuperionError
from superion.trajectory import ArrayTrajectory
from superion.trajectory.sanity import (JUMP_SIGMAS, MIN_JUMP_A, check_cells, perpendicular_widths, step_lengths,
                                        step_limits_A)

from test_faults import physical_frames
from test_msd import fluctuating_cells, wrap


def walk(F=120, N=9, seed=0, step=0.05):
    """A wrapped random walk in a breathing triclinic cell: (wrapped positions, true path, cells)."""
    rng = np.random.default_rng(seed)
    cells = fluctuating_cells(F, rng)
    true = rng.random((N, 3)) * 9 + np.cumsum(step * rng.standard_normal((F, N, 3)), axis=0)
    return wrap(true, cells), true, cells


def test_thermal_limit_is_20_sigma_times_interval():
    from ase import units

    m = np.array([1.008, 22.99])
    lim = step_limits_A(m, 600.0, 10.0)
    sigma = np.sqrt(units.kB * 600.0 / m) * units.fs  # Å/fs, through ASE's own units
    np.testing.assert_allclose(lim, np.maximum(JUMP_SIGMAS * sigma * 10.0, MIN_JUMP_A), rtol=1e-6)
    assert lim[0] == pytest.approx(4.44, abs=0.01) and lim[1] == MIN_JUMP_A  # H: 20 x 0.022 Å/fs x 10 fs
    assert np.all(np.isinf(step_limits_A(m, 600.0, None)))  # no usable times: only NaN is refused
    assert np.all(step_limits_A(m, None, 10.0) > lim)  # unknown temperature: a generous bound


def test_kernel_steps_match_numpy_reference():
    """unwrap_chunk's and collect_chunk's running maxima are the lower bounds of step_lengths
    (wrapped: minimum image, fractional x width; continuous: largest Cartesian component)."""
    pos, true, cells = walk()
    inv = inverse_cells(cells)[0]
    widths = as_c64(perpendicular_widths(inv))
    frac0 = to_fractional(pos[:1], cells[:1])[0]
    bound, length = step_lengths(pos, frac0, cells, inv, wrapped=True)
    assert np.all(bound <= length + 1e-12) and bound[0].max() < 1e-12
    # the step in each frame's own cell (the cell's affine breathing is no motion of the atom)
    s_true = to_fractional(true, cells)
    np.testing.assert_allclose(length[1:], np.linalg.norm(np.einsum("fnj,fjk->fnk", np.diff(s_true, axis=0), cells[1:]),
                                                          axis=2), atol=1e-9)
    got = np.zeros(pos.shape[1])
    unwrap_chunk(as_c64(pos), as_c64(cells), as_c64(inv), widths, as_c64(frac0.T), np.empty_like(pos), got)
    np.testing.assert_allclose(got, bound.max(axis=0), rtol=1e-12)
    # collect_chunk, both paths
    N = pos.shape[1]
    for wrapped, data in ((True, pos), (False, true)):
        first = as_c64(data[0].T)
        acc = as_c64((to_fractional(data[:1], cells[:1])[0] if wrapped else data[0]).T)
        steps = np.zeros(N)
        F = len(data)
        _, qs = collect_chunk(as_c64(data), as_c64(cells), as_c64(inv), widths, wrapped, acc, np.full(N, 1.0 / N),
                              np.arange(2), np.ones(N), first, 0, np.empty((2, 3, F)), np.zeros((F, 3)),
                              np.zeros((F, 3)), np.zeros(2), steps, 0.0)
        ref, _ = step_lengths(data, to_fractional(data[:1], cells[:1])[0] if wrapped else data[0], cells, inv, wrapped)
        np.testing.assert_allclose(steps, ref.max(axis=0), rtol=1e-12)
        assert np.isfinite(qs) and np.isfinite(steps).all()
        # a NaN coordinate: kept in the running maximum (unwrapping) or in the step sum (continuous)
        bad = as_c64(data).copy()
        bad[F // 2, 4, 1] = np.nan
        acc = as_c64((to_fractional(data[:1], cells[:1])[0] if wrapped else data[0]).T)
        steps = np.zeros(N)
        _, qs = collect_chunk(bad, as_c64(cells), as_c64(inv), widths, wrapped, acc, np.full(N, 1.0 / N),
                              np.arange(2), np.ones(N), first, 0, np.empty((2, 3, F)), np.zeros((F, 3)),
                              np.zeros((F, 3)), np.zeros(2), steps, 0.0)
        assert (np.isnan(steps[4]) and np.isfinite(np.delete(steps, 4)).all()) if wrapped else np.isnan(qs)


@pytest.mark.parametrize("wrapped", [True, False])
@pytest.mark.parametrize("bad", ["nan", "inf", "jump"])
def test_collect_mobile_names_the_frame_and_atom(wrapped, bad):
    symbols, pos, cell, times = physical_frames(F=90)
    if wrapped:
        pos = pos % 12.0
    # in the third chunk of 25 frames: an Na that jumps 5 Å in 20 fs (its bound at 600 K: 2 Å), an H that is NaN
    frame, atom = 61, (5 if bad == "jump" else 23)
    pos = pos.copy()
    if bad == "jump":
        pos[frame:, atom] += [0.0, 5.0, 0.0]
    else:
        pos[frame, atom, 1] = np.nan if bad == "nan" else np.inf
    masses = np.array([{"Na": 22.99, "B": 10.81, "H": 1.008}[s] for s in symbols])
    traj = ArrayTrajectory(pos, cell, times, symbols, masses, wrapped=wrapped, temperature_K=600.0)
    with pytest.raises(SuperionError) as info:
        collect_mobile(traj, np.arange(8), chunk_frames=25)
    msg = str(info.value)
    assert f"atom {atom} ({symbols[atom]})" in msg
    if bad == "jump":
        import re

        assert f"between frames {frame - 1} and {frame}" in msg
        assert float(re.search(r"moved (\S+) A", msg).group(1)) == pytest.approx(5.0, abs=0.3)
    else:
        assert f"frame {frame}:" in msg and "non-finite" in msg


def test_real_dynamics_and_boundary_crossings_pass():
    """Atoms that cross the cell many times (wrapped) and a breathing cell raise nothing."""
    pos, true, cells = walk(F=400, step=0.04)
    assert np.abs(pos - true).max() > 5.0
    traj = ArrayTrajectory(pos, cells, np.arange(400) * 5.0, ["Na"] * 3 + ["B"] * 6, [23.0] * 3 + [10.8] * 6,
                           temperature_K=300.0)
    mob = collect_mobile(traj, np.arange(3), chunk_frames=64)
    assert np.isfinite(mob.disp_A).all()
    assert sum(1 for _ in iter_unwrapped(traj, chunk_frames=64)) == 7


def test_rotation_pass_names_the_global_atom_index():
    symbols, pos, cell, times = physical_frames(F=40)
    pos = pos.copy()
    pos[20:, 27, 0] += 10.0  # an H of the last BH4; its bound: 20 x 0.022 Å/fs x 20 fs = 8.9 Å
    masses = np.array([{"Na": 22.99, "B": 10.81, "H": 1.008}[s] for s in symbols])
    traj = ArrayTrajectory(pos, cell, times, symbols, masses, wrapped=False, temperature_K=600.0)
    atoms = np.arange(18, 28)  # the last two clusters only: index 9 of the selection
    with pytest.raises(SuperionError, match=r"atom 27 \(H\) moved 10 A between frames 19 and 20"):
        list(iter_unwrapped(traj, atoms, chunk_frames=16))


def test_bad_cells_are_named():
    cells = np.broadcast_to(np.eye(3) * 10, (5, 3, 3)).copy()
    check_cells(cells, "t")
    cells[3, 2, 2] = 0.0
    with pytest.raises(SuperionError, match="frame 13: the cell has no volume"):
        check_cells(cells, "t", frame0=10)
    cells[1, 0, 0] = np.inf
    with pytest.raises(SuperionError, match="frame 1: the cell is not finite"):
        check_cells(cells, "t")


def test_diffusion_of_nan_displacements_is_an_error_not_nan():
    from superion.analysis.diffusion import analyze_displacements

    disp = np.cumsum(np.random.default_rng(0).standard_normal((4, 3, 50)), axis=2)
    disp[1, 0, 20:] = np.nan
    with pytest.raises(SuperionError, match="NaN/inf"):
        analyze_displacements(disp, 10.0, 600.0, np.full(50, 1000.0))


def test_short_run_warning_never_rounds_up_to_the_limit():
    from superion.analysis.diffusion import below

    assert below(19.98, 20.0) == "19.98"
    assert below(19.99996, 20.0) == "19.99996"
    assert below(12.345, 20.0) == "12.3"
