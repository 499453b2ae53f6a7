"""Probability density of the mobile ions on a grid, written as a volumetric file (VESTA, OVITO).

Positions are binned in *fractional* coordinates, wrapped into the cell, so NPT cell
fluctuations do not smear the density; the grid has ceil(|a_i| / spacing) points along
each lattice vector of the mean cell. The density is in ions per Å³ of the mean cell, so
Σ ρ · V_voxel = n_ions. File formats (by name):

- ``*.cube``: Gaussian cube (ase.io.cube.write_cube), values = ions/Å³;
- a name containing ``CHGCAR``/``CHG`` or ending in ``.vasp``: VASP CHGCAR
  (ase VaspChargeDensity, which stores ρ·V as VASP does; VESTA divides by V again).

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
    """Write ``density`` (ions/Å³) with ``atoms`` as a cube or CHGCAR file, atomically."""
    from superion.atomic import atomic_path

    fmt = volumetric_format(path)
    with atomic_path(path) as tmp:
        if fmt == "cube":
            from ase.io.cube import write_cube

            with open(tmp, "w") as fh:
                write_cube(fh, atoms, data=density, comment="superion ion probability density, ions/A^3")
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
