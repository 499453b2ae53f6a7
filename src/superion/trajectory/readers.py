"""Trajectory readers: one interface over every format analysis reads, and ``open_trajectory``.

Formats: superion run directories and ``.h5`` (:mod:`superion.trajectory.h5md`), any
ASE-readable trajectory (``.traj`` lazily, ``.extxyz``, XDATCAR, vasprun.xml, LAMMPS dumps and
others loaded once; :mod:`superion.trajectory.formats`), DCD/XTC/TRR with a topology through
MDAnalysis (:mod:`superion.trajectory.mda`, an optional dependency), and in-memory arrays
(:class:`ArrayTrajectory`: tests, trajectories built in Python).

The frame interval is decided here and nowhere else: :func:`open_trajectory` applies an
explicit ``frame_interval_fs`` (ASE files: it sets the times; superion .h5: it must agree with
the stored times), and every reader answers ``frame_interval_fs`` for the analyses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from superion.errors import SuperionError
from superion.files import read_json
from superion.layout import COMPLETE_NAME, METADATA_NAME, TRAJECTORY_NAME
from superion.structures.clusters import ClusterLabels, labels_for


class TrajectoryReader:
    """Common reader interface (see docs/architecture.md, "Trajectory reader").

    Attributes: symbols, n_atoms, n_frames, masses (N,) amu, times_fs (F,), steps (F,),
    frame_interval_fs, temperature_K, wrapped, labels, metadata. ``frames`` may be a slice, an
    int or an index array (an int gives one frame, shape (1, ...)); ``atoms`` None (all), a
    slice or an index array. Readers are context managers (``with open_trajectory(p) as tr``).
    """

    symbols: list[str]
    masses: np.ndarray
    times_fs: np.ndarray
    steps: np.ndarray
    temperature_K: float | None
    wrapped: bool
    labels: ClusterLabels | None
    metadata: dict
    # the interval given to open_trajectory (it agrees with times_fs); None: from times_fs
    _frame_interval_fs: float | None = None

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    @property
    def n_frames(self) -> int:
        return int(len(self.times_fs))

    @property
    def frame_interval_fs(self) -> float:
        """Time between frames (fs): the interval given to :func:`open_trajectory`, else the
        spacing of ``times_fs``; SuperionError when the times are not evenly spaced and
        increasing (or there are fewer than two frames)."""
        if self._frame_interval_fs is not None:
            return self._frame_interval_fs
        return evenly_spaced_interval(self.times_fs)

    def cells(self, frames=slice(None)) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def positions(self, frames=slice(None), atoms=None) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def velocities(self, frames=slice(None), atoms=None) -> np.ndarray | None:
        """Velocities (f, n, 3) Å/fs when stored, else None."""
        return None

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def evenly_spaced_interval(times_fs: np.ndarray) -> float:
    """Spacing (fs) of evenly spaced, increasing frame times (median step, 0.1 % tolerance)."""
    steps = np.diff(np.asarray(times_fs, dtype=float))
    if steps.size == 0:
        raise SuperionError("a frame interval needs at least 2 frames; check the trajectory")
    dt = float(np.median(steps))
    if not dt > 0 or np.max(np.abs(steps - dt)) > 1e-3 * dt:
        raise SuperionError("frame times are not evenly spaced and increasing; pass --frame-interval-fs or fix the trajectory")
    return dt


def _frame_index(frames, n: int) -> tuple[Any, np.ndarray | None]:
    """(h5py-compatible selection, reorder index or None)."""
    if isinstance(frames, (int, np.integer)):
        i = int(frames)
        if i < -n or i >= n:
            raise IndexError(f"frame {i} out of range for {n} frames")
        i %= n
        return slice(i, i + 1), None
    if isinstance(frames, slice):
        return slice(*frames.indices(n)), None
    idx = np.asarray(frames, dtype=np.int64).ravel()
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"frame index out of range for {n} frames")
    idx = idx % n if n else idx
    uniq, inverse = np.unique(idx, return_inverse=True)
    return uniq, inverse


def _read_frames(ds, frames, n: int) -> np.ndarray:
    sel, inverse = _frame_index(frames, n)
    if isinstance(sel, slice):
        if sel.step is not None and sel.step < 0:
            return ds[np.arange(n)[sel][::-1]][::-1] if len(range(*sel.indices(n))) else ds[0:0]
        return ds[sel]
    data = ds[sel] if len(sel) else ds[0:0]
    return data[inverse]


class ArrayTrajectory(TrajectoryReader):
    """A trajectory held in memory, with the reader interface (tests, trajectories built in Python).

    positions_A: (F, N, 3) Å; cells_A: (F, 3, 3) Å (rows = lattice vectors) or one (3, 3) cell
    for every frame; times_fs: (F,) fs; symbols: N element symbols; masses: (N,) amu;
    wrapped: whether positions may jump across the cell; steps: (F,) MD steps (default
    0..F−1). Positions and cells are returned as float64 copies.
    """

    def __init__(self, positions_A, cells_A, times_fs, symbols, masses, wrapped: bool = True,
                 temperature_K: float | None = None, labels: ClusterLabels | None = None,
                 metadata: dict | None = None, steps=None) -> None:
        pos = np.asarray(positions_A, dtype=np.float64)
        n_atoms = len(symbols)
        if pos.size == 0 and pos.ndim != 3:  # no frames at all
            pos = pos.reshape(0, n_atoms, 3)
        cells = np.asarray(cells_A, dtype=np.float64)
        if cells.ndim == 2:
            cells = np.broadcast_to(cells, (pos.shape[0], 3, 3))
        self.positions_A = pos
        self.cells_A = cells
        self.times_fs = np.asarray(times_fs, dtype=np.float64)
        self.symbols = list(symbols)
        self.masses = np.asarray(masses, dtype=np.float64)
        F = pos.shape[0]
        if (pos.ndim != 3 or pos.shape[1:] != (n_atoms, 3) or cells.shape != (F, 3, 3)
                or self.times_fs.shape != (F,) or self.masses.shape != (n_atoms,)):
            raise SuperionError(
                f"ArrayTrajectory: positions {pos.shape}, cells {cells.shape}, times {self.times_fs.shape}, "
                f"masses {self.masses.shape} do not fit {n_atoms} symbols; give (F, N, 3), (F, 3, 3) or (3, 3), (F,), (N,)"
            )
        self.steps = np.arange(F, dtype=np.int64) if steps is None else np.asarray(steps, dtype=np.int64)
        self.wrapped = bool(wrapped)
        self.temperature_K = temperature_K
        self.labels = labels
        self.metadata = {} if metadata is None else metadata

    def cells(self, frames=slice(None)) -> np.ndarray:
        return np.array(_read_frames(self.cells_A, frames, self.n_frames))

    def positions(self, frames=slice(None), atoms=None) -> np.ndarray:
        p = _read_frames(self.positions_A, frames, self.n_frames)
        return np.array(p if atoms is None else p[:, atoms])



class AseTrajectoryReader(TrajectoryReader):
    """Reader of ASE-readable files (.traj lazily; .extxyz and others loaded once).

    ``format``: an ASE format name (default: guessed from the name and contents, see
    :func:`superion.trajectory.formats.ase_format`). Times: ``frame_interval_fs`` if given
    (frame i at i × interval; the interval wins over stored times), else
    ``atoms.info["time_fs"]`` (or ``"time"``, taken as fs), else POTIM for vasprun.xml, else an
    error. ``type_map`` (type → element) names the numeric atom types of a LAMMPS dump without
    an element column; such a dump without it is refused. Positions are assumed wrapped unless
    ``wrapped=False`` is passed or the frames say ``info["wrapped"] = False`` (as
    ``superion export`` writes).
    """

    def __init__(self, path: str | os.PathLike, frame_interval_fs: float | None = None,
                 wrapped: bool | None = None, *, format: str | None = None,
                 type_map: dict[str, str] | None = None) -> None:
        from ase.io import iread
        from ase.io.trajectory import Trajectory

        from superion.trajectory.formats import (LAMMPS_DUMP_FORMATS, VASP_XML_FORMAT, ase_format,
                                                 lammps_specorder, vasprun_md_parameters)

        self.path = Path(path)
        self._traj = None
        fmt = ase_format(self.path, format)
        kwargs: dict[str, Any] = {}
        md_params: dict[str, float] = {}
        if fmt in LAMMPS_DUMP_FORMATS:
            specorder = lammps_specorder(self.path, type_map)
            if specorder:
                kwargs["specorder"] = specorder
        elif type_map:
            raise SuperionError(f"--type-map names LAMMPS/topology atom types; {self.path} ({fmt}) names its elements: drop it")
        if fmt == VASP_XML_FORMAT:
            md_params = vasprun_md_parameters(self.path)
            if md_params.get("IBRION", 0.0) != 0.0:
                raise SuperionError(f"{self.path} is not a molecular-dynamics run (IBRION = {md_params['IBRION']:g}; "
                                    "MD has IBRION = 0)")
            if frame_interval_fs is None and md_params.get("POTIM", 0.0) > 0:
                frame_interval_fs = md_params["POTIM"]  # every ionic step is stored: POTIM fs apart
        try:
            if fmt == "traj":
                self._traj = Trajectory(str(self.path), "r")
                n = len(self._traj)
                first = self._traj[0] if n else None
                infos = [self._traj[i].info for i in range(n)] if n else []
                self._pos_all = None
                self._cell_all = None
            else:
                pos, cell, infos = [], [], []
                first = None
                for a in iread(str(self.path), index=":", format=fmt, **kwargs):
                    if first is None:
                        first = a
                    elif len(a) != len(first):
                        raise SuperionError(f"{self.path}: frames have different atom counts; one system per file")
                    pos.append(np.asarray(a.positions, dtype=np.float64))
                    cell.append(np.asarray(a.cell.array, dtype=np.float64))
                    infos.append(dict(a.info))
                self._pos_all = np.asarray(pos)
                self._cell_all = np.asarray(cell)
        except SuperionError:
            raise
        except Exception as exc:
            guessed = "" if format else ", a format guessed from the name"
            raise SuperionError(f"cannot read trajectory {self.path} as {fmt}{guessed} ({type(exc).__name__}: "
                                f"{' '.join(str(exc).split())[:200]}); check the file or pass --format") from None
        if first is None:
            hint = "" if format else f" read as {fmt}, a format guessed from the name (pass --format if it is another)"
            raise SuperionError(f"{self.path} holds no frames{hint}")
        self.symbols = first.get_chemical_symbols()
        self.masses = np.asarray(first.get_masses(), dtype=float)
        times = [i.get("time_fs", i.get("time")) for i in infos]
        if frame_interval_fs is not None:  # an explicit interval wins over stored times
            self._frame_interval_fs = _positive_interval(frame_interval_fs)
            self.times_fs = np.arange(len(infos), dtype=float) * self._frame_interval_fs
        elif all(t is not None for t in times):
            self.times_fs = np.asarray(times, dtype=float)
        else:
            raise SuperionError(
                f"{self.path} has no per-frame time (atoms.info 'time_fs'); give the frame interval "
                "(frame_interval_fs / --frame-interval-fs)"
            )
        # LAMMPS dumps number their frames by MD step ('timestep')
        steps = [i.get("step", i.get("timestep")) for i in infos]
        self.steps = (np.asarray(steps, dtype=np.int64) if all(x is not None for x in steps)
                      else np.arange(len(infos), dtype=np.int64))
        if wrapped is None:
            wrapped = bool(first.info.get("wrapped", True))
        self.wrapped = wrapped
        t = first.info.get("temperature_K", md_params.get("TEBEG"))
        self.temperature_K = None if t is None else float(t)
        try:
            self.labels = labels_for(first)
        except Exception:  # labelling needs a periodic cell; a molecule file has no clusters to speak of
            self.labels = None
        self.metadata = {"source": str(self.path), "format": fmt}

    def _get(self, frames, what: str) -> np.ndarray:
        n = self.n_frames
        sel, inverse = _frame_index(frames, n)
        idx = np.arange(n)[sel] if isinstance(sel, slice) else sel
        if self._traj is not None:
            arr = np.array([
                self._traj[int(i)].positions if what == "pos" else self._traj[int(i)].cell.array for i in idx
            ], dtype=np.float64).reshape((len(idx),) + ((self.n_atoms, 3) if what == "pos" else (3, 3)))
        else:
            arr = (self._pos_all if what == "pos" else self._cell_all)[idx]
        return arr if inverse is None else arr[inverse]

    def cells(self, frames=slice(None)) -> np.ndarray:
        return self._get(frames, "cell")

    def positions(self, frames=slice(None), atoms=None) -> np.ndarray:
        data = self._get(frames, "pos")
        return data if atoms is None else data[:, atoms]

    def close(self) -> None:
        if self._traj is not None:
            self._traj.close()


def _positive_interval(frame_interval_fs) -> float:
    if not frame_interval_fs > 0:
        raise SuperionError(f"--frame-interval-fs {frame_interval_fs}: give a positive time in fs")
    return float(frame_interval_fs)


def _confirm_interval(reader: TrajectoryReader, frame_interval_fs: float) -> None:
    """Take an explicit interval for a trajectory with exact stored times only if it agrees."""
    if reader.n_frames >= 2:
        try:
            stored = evenly_spaced_interval(reader.times_fs)
        except SuperionError:
            raise SuperionError(
                f"the frame times stored in {reader.path} are not evenly spaced, and --frame-interval-fs does not "
                "override them there; 'superion export' the frames and analyse the .extxyz with --frame-interval-fs"
            ) from None
        if abs(stored - frame_interval_fs) > 1e-3 * stored:
            raise SuperionError(
                f"--frame-interval-fs {frame_interval_fs:g} contradicts the {stored:g} fs between the frames stored in "
                f"{reader.path}; drop the option (superion trajectories store exact times)"
            )
    reader._frame_interval_fs = frame_interval_fs


def open_trajectory(path: str | os.PathLike, frame_interval_fs: float | None = None,
                    wrapped: bool | None = None, *, format: str | None = None,
                    type_map: str | dict | None = None, topology: str | os.PathLike | None = None) -> TrajectoryReader:
    """Open a run directory, a ``.h5`` trajectory, a DCD/XTC/TRR file with its ``topology``
    (MDAnalysis), or any ASE-readable trajectory file (``format``: an ASE format name when the
    name does not tell; extxyz, .traj, XDATCAR, vasprun.xml, LAMMPS dumps, ...).

    ``frame_interval_fs`` (fs, > 0) is applied here, once, for every format: it sets the frame
    times of ASE and DCD files (overriding stored ones; needed when they have none); for run
    directories, ``.h5``, XTC and TRR, whose times are exact, it must agree with them (0.1 %) or a
    SuperionError says so. The reader's ``frame_interval_fs`` is then that value.
    ``type_map`` (``"1=Li,2=P"`` or a mapping) names numeric atom types (LAMMPS dumps, topologies
    without elements). ``wrapped`` overrides the wrapped/unwrapped guess for ASE files (superion
    .h5 is always unwrapped). Use as a context manager: ``with open_trajectory(p) as tr: ...``.
    """
    from superion.trajectory.formats import MDANALYSIS_SUFFIXES, parse_type_map

    if frame_interval_fs is not None:
        frame_interval_fs = _positive_interval(frame_interval_fs)
    type_map = parse_type_map(type_map)
    p = Path(path)
    if not p.exists():
        raise SuperionError(f"trajectory {p} not found; give a run directory, a .h5, .traj or .extxyz file")
    if topology is not None or p.suffix.lower() in MDANALYSIS_SUFFIXES:
        from superion.trajectory.mda import MDAnalysisTrajectoryReader

        reader = MDAnalysisTrajectoryReader(p, topology, type_map=type_map, format=format,
                                            frame_interval_fs=frame_interval_fs)
        if frame_interval_fs is not None and reader._frame_interval_fs is None:
            _confirm_closing(reader, frame_interval_fs)
        return reader
    if p.is_dir() or p.suffix.lower() in (".h5", ".hdf5", ".h5md"):
        from superion.trajectory.h5md import H5TrajectoryReader

        if format is not None or type_map is not None:
            raise SuperionError(f"{p} is a superion trajectory: --format and --type-map do not apply, drop them")
        if p.is_dir():
            h5 = p / TRAJECTORY_NAME
            if not h5.exists():
                raise SuperionError(f"{p} has no {TRAJECTORY_NAME}; is it a 'superion md' run directory?")
            meta = (read_json(p / METADATA_NAME, fix=f"restore it or rerun superion md into {p}")
                    if (p / METADATA_NAME).exists() else None)
            _verify_finished_run(h5)
            reader = H5TrajectoryReader(h5, metadata=meta)
        else:
            if p.name == TRAJECTORY_NAME:
                _verify_finished_run(p)
            reader = H5TrajectoryReader(p)
        if frame_interval_fs is not None:
            _confirm_closing(reader, frame_interval_fs)
        return reader
    return AseTrajectoryReader(p, frame_interval_fs=frame_interval_fs, wrapped=wrapped, format=format,
                               type_map=type_map)


def _verify_finished_run(h5: Path) -> None:
    """Check a run's trajectory against the content digests its ``complete.json`` recorded."""
    from superion.trajectory.h5md import verify_digests

    done = h5.parent / COMPLETE_NAME
    if done.exists():
        rec = read_json(done, fix=f"delete it and rerun superion md into {h5.parent} (it resumes at the end)")
        if rec.get("trajectory_sha256"):  # runs finished before digests were recorded have none
            verify_digests(h5, rec["trajectory_sha256"], done)


def _confirm_closing(reader: TrajectoryReader, frame_interval_fs: float) -> None:
    """:func:`_confirm_interval`, closing the reader when the interval is refused."""
    try:
        _confirm_interval(reader, frame_interval_fs)
    except SuperionError:
        reader.close()
        raise
