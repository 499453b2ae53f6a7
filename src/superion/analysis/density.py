"""Probability density of the mobile ions on a grid, written as a volumetric file (VESTA, OVITO).

Positions are binned in *fractional* coordinates, wrapped into the cell, so NPT cell
fluctuations do not smear the density; the grid has ceil(|a_i| / spacing) points along
each lattice vector of the mean cell. The density is in ions per Å³ of the mean cell, so
Σ ρ · V_voxel = n_ions. File formats (by name):

- ``*.cube``: Gaussian cube in atomic units, as the format prescribes (cell in Bohr by
  ase.io.cube.write_cube, values = ions/Bohr³), so VESTA, OVITO, ASE and pymatgen all
  integrate it to ``n_ions`` (Σ ρ · V_voxel in Bohr³);
- a name containing ``CHGCAR``/``CHG`` or ending in ``.vasp``: VASP CHGCAR, values ρ·V_cell
  (ase VaspChargeDensity multiplies by V as VASP does: Σ values / n_grid = n_ions).

The structure written with it is the first frame, in fractional coordinates of the mean cell.
:func:`write_density` is the whole ``superion analyze density`` command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from superion.errors import SuperionError

DEFAULT_SPACING_A = 0.2


def grid_shape(cell: np.ndarray, spacing_A: float) -> tuple[int, int, int]:
    """Grid points along each lattice vector for a target spacing (Å)."""
    if not spacing_A > 0:
        raise SuperionError(f"grid spacing must be positive, got {spacing_A}; pass --grid-spacing-A")
    lengths = np.linalg.norm(cell, axis=1)
    return tuple(int(max(1, np.ceil(L / spacing_A))) for L in lengths)


def density_grid(traj, atoms: np.ndarray, spacing_A: float = DEFAULT_SPACING_A, chunk_frames: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(density (na, nb, nc) ions/Å³, mean cell (3, 3) Å) of the selected atoms over all frames.

    Frames that cannot be physical (:mod:`superion.trajectory.sanity`: non-finite cells or
    positions, jumps) are a SuperionError naming the frame and the atom, not silently binned."""
    from superion.analysis.kernels import as_c64, histogram_frac
    from superion.analysis.unwrap import inverse_cells
    from superion.trajectory.sanity import FrameGuard, check_cells

    F = int(traj.n_frames)
    if F == 0:
        raise SuperionError("trajectory has no frames; check the file or the run directory")
    cells_all = np.asarray(traj.cells(slice(None)), dtype=float)
    guard = FrameGuard(traj, None, np.asarray(atoms))
    check_cells(cells_all, guard.source)
    inv_all = inverse_cells(cells_all)[0]
    mean_cell = cells_all.mean(axis=0)
    shape = grid_shape(mean_cell, spacing_A)
    if np.prod(shape, dtype=float) > 2e8:
        raise SuperionError(f"grid {shape} is too large; use a coarser --grid-spacing-A")
    grid = np.zeros(shape)
    wrapped = bool(traj.wrapped)
    prev = None
    for start in range(0, F, chunk_frames):
        frames = slice(start, min(start + chunk_frames, F))
        pos = np.asarray(traj.positions(frames, atoms), dtype=float)
        frac = np.matmul(pos, inv_all[frames])
        # the step check compares fractional positions (wrapped) or Cartesian ones (continuous)
        prev = (frac if wrapped else pos)[0] if prev is None else prev
        guard.check(None, None, pos, prev, cells_all[frames], inv_all[frames], wrapped, start)
        prev = (frac if wrapped else pos)[-1]
        histogram_frac(as_c64(frac), grid)
    voxel = abs(np.linalg.det(mean_cell)) / grid.size
    return grid / (F * voxel), mean_cell


def structure_for_file(traj, mean_cell: np.ndarray):
    """First frame as ASE Atoms in the mean cell (fractional coordinates kept, wrapped)."""
    from ase import Atoms

    from superion.analysis.unwrap import to_fractional

    frac = to_fractional(np.asarray(traj.positions(slice(0, 1)), dtype=float), np.asarray(traj.cells(slice(0, 1)), dtype=float))[0]
    frac -= np.floor(frac)
    atoms = Atoms(traj.symbols, scaled_positions=frac, cell=mean_cell, pbc=True)
    order = np.argsort(np.asarray(traj.symbols), kind="stable")  # POSCAR wants one block per element
    return atoms[order]


def volumetric_format(path) -> str:
    """'cube' or 'chgcar' from the file name; SuperionError otherwise."""
    name = Path(path).name
    if name.lower().endswith(".cube"):
        return "cube"
    if "CHG" in name.upper() or name.lower().endswith(".vasp"):
        return "chgcar"
    raise SuperionError(f"cannot tell the volumetric format of {name!r}; name it *.cube or *CHGCAR*")


def write_volumetric(path, atoms, density: np.ndarray) -> None:
    """Write ``density`` (ions/Å³) with ``atoms`` as a cube (ions/Bohr³) or CHGCAR (ρ·V) file,
    atomically."""
    from superion.atomic import atomic_path

    fmt = volumetric_format(path)
    with atomic_path(path) as tmp:
        if fmt == "cube":
            from ase.io.cube import write_cube
            from ase.units import Bohr

            with open(tmp, "w") as fh:  # the cube convention is atomic units: per Bohr^3
                write_cube(fh, atoms, data=density * Bohr**3,
                           comment="superion ion probability density, ions/Bohr^3")
        else:
            from ase.calculators.vasp import VaspChargeDensity

            vcd = VaspChargeDensity(None)
            vcd.atoms = [atoms]
            vcd.chg = [density]
            vcd.write(str(tmp), format="chgcar")


@dataclass(frozen=True)
class DensityResult:
    """What :func:`write_density` wrote: the density of ``n_ions`` ``species`` ions over
    ``n_frames`` frames on a grid of ``shape`` points, to ``path``."""

    path: Path
    species: str
    n_ions: int
    n_frames: int
    shape: tuple[int, int, int]


def write_density(trajectory: str | os.PathLike, out: str | os.PathLike, species: str = "Na",
                  spacing_A: float = DEFAULT_SPACING_A, *, frame_interval_fs: float | None = None,
                  open_options: dict | None = None) -> DensityResult:
    """``superion analyze density``: open ``trajectory`` (run directory or file;
    ``frame_interval_fs`` only matters for files without frame times), bin the ``species``
    ions on a grid of ~``spacing_A`` Å (:func:`density_grid`) and write it with the first
    frame to ``out`` (``*.cube`` or ``*CHGCAR*``, :func:`write_volumetric`). ``open_options`` go
    to :func:`~superion.trajectory.open_trajectory` (format, type_map, topology)."""
    from superion.paths import check_writable
    from superion.trajectory import open_trajectory

    volumetric_format(out)  # fail on a bad name (or place) before reading the trajectory
    check_writable(out)
    with open_trajectory(trajectory, frame_interval_fs, **(open_options or {})) as traj:
        if traj.n_frames == 0:
            raise SuperionError(f"{trajectory} holds no frames")
        idx = np.flatnonzero(np.asarray(traj.symbols) == species)
        if idx.size == 0:
            present = ", ".join(sorted(set(traj.symbols)))
            raise SuperionError(f"species {species!r} not in the trajectory (elements: {present}); check --species")
        rho, cell = density_grid(traj, idx, spacing_A)
        atoms = structure_for_file(traj, cell)
        n_frames = traj.n_frames
    write_volumetric(out, atoms, rho)
    return DensityResult(Path(out), species, int(idx.size), int(n_frames), tuple(int(n) for n in rho.shape))


# Interstitial sites for hop counting. Smoothing of ~0.3 Å turns a few thousand position samples
# into a density whose maxima are sites, not single-voxel noise; maxima closer than the ~1.4 Å
# comparison window are one site (a Na site is ~0.5 Å wide in its thermal ellipsoid).
SITE_SMOOTH_A = 0.3
SITE_WINDOW_A = 1.4
SITE_MIN_RELATIVE = 0.05
SITE_DEDUPE_A = 1.0


def density_maxima_frac(frac, cell_A, *, spacing_A: float = DEFAULT_SPACING_A, smooth_A: float = SITE_SMOOTH_A,
                        window_A: float = SITE_WINDOW_A) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of the (Gaussian-smoothed, periodic) density of fractional positions.

    frac: (F, n, 3) fractional coordinates (any image); cell_A: (3, 3) mean cell (Å). Returns
    (sites (k, 3) fractional in [0, 1), smoothed counts per voxel at each, (k,)), strongest first."""
    from scipy import ndimage

    from superion.analysis.kernels import as_c64, histogram_frac

    cell = np.asarray(cell_A, dtype=np.float64)
    shape = grid_shape(cell, spacing_A)
    grid = np.zeros(shape)
    histogram_frac(as_c64(np.asarray(frac, dtype=np.float64)), grid)
    voxel_A = np.linalg.norm(cell, axis=1) / np.array(shape)
    smooth = ndimage.gaussian_filter(grid, sigma=smooth_A / voxel_A, mode="wrap")
    size = [max(3, int(round(window_A / v)) | 1) for v in voxel_A]
    peak = (smooth == ndimage.maximum_filter(smooth, size=size, mode="wrap")) & (smooth > 0)
    idx = np.argwhere(peak)
    vals = smooth[tuple(idx.T)]
    order = np.argsort(-vals, kind="stable")
    return ((idx[order] + 0.5) / np.array(shape)) % 1.0, vals[order]


def hop_sites_frac(frac, cell_A, start_frac, *, min_relative: float = SITE_MIN_RELATIVE,
                   dedupe_A: float = SITE_DEDUPE_A, spacing_A: float = DEFAULT_SPACING_A, snap_A: float | None = None) -> dict:
    """Sites for hop counting: the mobile ions' starting positions plus the density maxima of the
    run that lie farther than ``dedupe_A`` (1 Å) from every site kept so far (interstitials).

    frac: (F, n, 3) fractional positions over the run; start_frac: (n, 3) first frame. A maximum
    counts only when its smoothed density is >= ``min_relative`` × the median density maximum at
    the starting sites (relative, so no species- or length-specific constant); starting positions
    closer than ``dedupe_A`` to each other are one site; with ``snap_A`` (Å, e.g. half the hop
    length) each starting position is first moved to the nearest density maximum within it. Returns
    {"sites_frac" (S, 3), "n_start_sites", "n_interstitial_sites", "method"}."""
    cell = np.asarray(cell_A, dtype=np.float64)
    start = np.asarray(start_frac, dtype=np.float64) % 1.0
    peaks, vals = density_maxima_frac(frac, cell, spacing_A=spacing_A)
    if snap_A and len(peaks):
        # the first frame catches each ion somewhere in its thermal cloud (seen: 1.2 Å off its centre);
        # the site is the cloud's density maximum, the nearest one within snap_A (half a hop)
        d = start[:, None, :] - peaks[None, :, :]
        d -= np.round(d)
        r = np.linalg.norm(d @ cell, axis=2)
        near = r.argmin(axis=1)
        start = np.where((r.min(axis=1) <= snap_A)[:, None], peaks[near], start)
    sites: list = []
    for p in start:  # two ions within dedupe_A of each other share one site (else they flicker between two)
        if sites:
            dd = np.asarray(sites) - p
            dd -= np.round(dd)
            if np.linalg.norm(dd @ cell, axis=1).min() <= dedupe_A:
                continue
        sites.append(p)
    n_start = len(sites)
    if len(peaks):
        d = peaks[:, None, :] - start[None, :, :]
        d -= np.round(d)
        near_start = np.linalg.norm(d @ cell, axis=2).min(axis=1) <= dedupe_A
        ref = float(np.median(vals[near_start])) if near_start.any() else float(vals.max())
        for p, v, ns in zip(peaks, vals, near_start):
            if ns or v < min_relative * ref:
                continue
            dd = np.asarray(sites) - p
            dd -= np.round(dd)
            if np.linalg.norm(dd @ cell, axis=1).min() > dedupe_A:
                sites.append(p)
    return {
        "sites_frac": np.asarray(sites),
        "n_start_sites": int(n_start),
        "n_interstitial_sites": int(len(sites) - n_start),
        "method": (("starting positions of the mobile ions (each moved to the nearest density maximum within "
                    f"{snap_A:.3g} A)" if snap_A else "starting positions of the mobile ions") + f" + maxima of the run's density (fractional grid {spacing_A:g} A, "
                   f"Gaussian smoothing {SITE_SMOOTH_A:g} A, maxima over {SITE_WINDOW_A:g} A) with >= {min_relative:g} x the median "
                   f"maximum at the starting sites, farther than {dedupe_A:g} A from every other site"),
    }
