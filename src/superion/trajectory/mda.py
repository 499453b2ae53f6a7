"""DCD, XTC and TRR trajectories (LAMMPS, GROMACS, NAMD/CHARMM) through MDAnalysis.

MDAnalysis is an optional dependency (``pip install 'superion[formats]'``), imported only when
such a file is opened. These files hold coordinates and boxes but no elements, so a topology
comes with them: a PDB/GRO/PSF/... file, or a LAMMPS data file (its ``Atoms # style`` comment
tells MDAnalysis the columns). Elements are the topology's ``elements`` when it has them, else
its atom types through ``type_map`` (``1=Li,2=P,...``, e.g. for LAMMPS); neither is an error that
lists the types. Masses: a LAMMPS data file's (as simulated), else the elements' standard ones.

Times: XTC and TRR store them (ps, converted to fs); a DCD's time unit depends on its writer
(LAMMPS ``units`` style), so a DCD needs ``frame_interval_fs``. Positions in Å (MDAnalysis
converts), cells from the box lengths and angles (rows = lattice vectors, a along x).
The box and the time of every frame are read once when the file is opened (one pass); positions
are then read frame by frame (``positions``) or in sequential chunks (``iter_positions_stored``,
float32 as stored).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from superion.errors import SuperionError
from superion.structures.clusters import labels_for
from superion.trajectory.formats import MDANALYSIS_SUFFIXES
from superion.trajectory.readers import TrajectoryReader, _frame_index, _positive_interval

LAMMPS_DATA_SUFFIXES = (".data", ".lmp", ".lammps")
# LAMMPS atom styles → MDAnalysis column descriptions
_ATOM_STYLES = {"atomic": "id type x y z", "charge": "id type q x y z", "molecular": "id resid type x y z",
                "full": "id resid type q x y z"}


def import_mdanalysis():
    """The MDAnalysis module, or a SuperionError saying how to install it."""
    try:
        import MDAnalysis
    except ImportError:
        raise SuperionError("reading DCD/XTC/TRR needs MDAnalysis: pip install 'superion[formats]' "
                            "(or pip install MDAnalysis)") from None
    return MDAnalysis


def _lammps_atom_style(path: Path) -> str | None:
    """MDAnalysis's ``atom_style`` for a LAMMPS data file, from its ``Atoms # style`` line."""
    with open(path, errors="replace") as fh:
        for line in fh:
            m = re.match(r"\s*Atoms\s*#\s*(\w+)", line)
            if m:
                return _ATOM_STYLES.get(m.group(1))
    return None


class MDAnalysisTrajectoryReader(TrajectoryReader):
    """Reader of a DCD/XTC/TRR ``path`` with its ``topology`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, topology: str | os.PathLike | None, *,
                 type_map: dict[str, str] | None = None, format: str | None = None,
                 frame_interval_fs: float | None = None) -> None:
        from ase import Atoms
        from ase.data import atomic_masses, atomic_numbers, chemical_symbols

        self.path = Path(path)
        kind = (format or MDANALYSIS_SUFFIXES.get(self.path.suffix.lower(), "")).upper()
        if topology is None:
            raise SuperionError(f"{self.path}: {kind or 'DCD/XTC/TRR'} files name no atoms; give the topology "
                                "with --topology (PDB, GRO, PSF or a LAMMPS data file)")
        top = Path(topology)
        if not top.is_file():
            raise SuperionError(f"topology {top} not found; check --topology")
        mda = import_mdanalysis()
        kwargs: dict = {}
        lammps = top.suffix.lower() in LAMMPS_DATA_SUFFIXES
        if lammps:
            kwargs["topology_format"] = "DATA"
            style = _lammps_atom_style(top)
            if style:
                kwargs["atom_style"] = style
            if kind == "DCD":
                kwargs["format"] = "LAMMPS"  # LAMMPS's DCD flavour (its units)
        elif format:
            kwargs["format"] = format
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # guessing notes and deprecations of MDAnalysis
                self._u = mda.Universe(str(top), str(self.path), **kwargs)
                boxes, times, steps = [], [], []
                for ts in self._u.trajectory:
                    boxes.append(None if ts.dimensions is None else np.array(ts.triclinic_dimensions, dtype=np.float64))
                    times.append(ts.time)
                    steps.append(ts.data.get("step", ts.frame))
        except SuperionError:
            raise
        except Exception as exc:
            raise SuperionError(f"cannot read {self.path} with topology {top} ({type(exc).__name__}: "
                                f"{' '.join(str(exc).split())[:200]}); check both files") from None
        atoms = self._u.atoms
        if not boxes:
            raise SuperionError(f"{self.path} holds no frames")
        if any(b is None for b in boxes):
            raise SuperionError(f"{self.path}: frame {next(i for i, b in enumerate(boxes) if b is None)} has no "
                                "periodic box; superion analyses periodic crystals")
        self._cells = np.stack(boxes)
        types = [str(t) for t in atoms.types] if hasattr(atoms, "types") else []
        elements = [str(e).strip().capitalize() for e in atoms.elements] if hasattr(atoms, "elements") else []
        if type_map:
            missing = sorted(set(types) - set(type_map))
            if not types or missing:
                raise SuperionError(f"--type-map does not say which element type(s) {', '.join(missing) or '?'} "
                                    f"of {top} are")
            self.symbols = [type_map[t] for t in types]
        elif elements and all(e in chemical_symbols[1:] for e in elements):
            self.symbols = elements
        else:
            found = ", ".join(sorted(set(types))) or "none"
            raise SuperionError(
                f"topology {top} does not name the elements of its atoms (types: {found}); say which element each "
                f"type is with --type-map, e.g. --type-map {','.join(f'{t}=EL' for t in sorted(set(types))[:3])}"
            )
        if lammps and hasattr(atoms, "masses") and np.all(atoms.masses > 0):
            self.masses = np.asarray(atoms.masses, dtype=np.float64)  # as simulated
        else:
            self.masses = np.array([atomic_masses[atomic_numbers[s]] for s in self.symbols])
        n = len(boxes)
        if frame_interval_fs is not None and kind == "DCD":
            self._frame_interval_fs = _positive_interval(frame_interval_fs)
            self.times_fs = np.arange(n, dtype=float) * self._frame_interval_fs
        elif kind == "DCD":
            raise SuperionError(f"{self.path}: the time unit of a DCD file depends on the program that wrote it; "
                                "give the time between frames with --frame-interval-fs")
        else:
            self.times_fs = np.asarray(times, dtype=float) * 1000.0  # MDAnalysis time: ps
        self.steps = np.asarray(steps, dtype=np.int64)
        self.wrapped = True  # unknown: unwrapping handles continuous positions too
        self.temperature_K = None
        self.metadata = {"source": str(self.path), "topology": str(top), "format": kind}
        first = self._frame(0)
        try:
            self.labels = labels_for(Atoms(self.symbols, positions=first, cell=self._cells[0], pbc=True))
        except Exception:  # clusters are an extra: a topology whose first frame cannot be labelled has none
            self.labels = None

    def _frame(self, i: int) -> np.ndarray:
        return self._u.trajectory[int(i)].positions

    def cells(self, frames=slice(None)) -> np.ndarray:
        sel, inverse = _frame_index(frames, self.n_frames)
        out = self._cells[sel]
        return np.array(out if inverse is None else out[inverse])

    def positions(self, frames=slice(None), atoms=None) -> np.ndarray:
        sel, inverse = _frame_index(frames, self.n_frames)
        idx = np.arange(self.n_frames)[sel] if isinstance(sel, slice) else sel
        out = np.empty((len(idx), self.n_atoms, 3))
        for k, i in enumerate(idx):
            out[k] = self._frame(i)
        out = out if inverse is None else out[inverse]
        return out if atoms is None else out[:, atoms]

    def iter_positions_stored(self, chunk_frames: int):
        """``(frames, positions (f, N, 3) Å float32)`` in file order, one sequential read."""
        n = self.n_frames
        buf = np.empty((min(chunk_frames, n), self.n_atoms, 3), dtype=np.float32)
        k, start = 0, 0
        for ts in self._u.trajectory:
            buf[k] = ts.positions
            k += 1
            if k == len(buf) or start + k == n:
                yield slice(start, start + k), buf[:k]
                start += k
                k = 0

    def close(self) -> None:
        try:
            self._u.trajectory.close()
        except Exception:  # closing is best effort
            pass
