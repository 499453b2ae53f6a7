"""The H5MD trajectory format of superion: writer (MD output) and reader (analysis input).

``trajectory.h5`` follows the H5MD 1.1 layout (readable by MDAnalysis' H5MD reader)::

    /h5md                       version=[1, 1]; author/, creator/ (name, version)
    /particles/all/position/    step (F,) int64, time (F,) float64 fs, value (F, N, 3) Å, unwrapped
    /particles/all/box/         dimension=3, boundary=periodic; edges/{step,time,value (F,3,3) Å}
    /particles/all/velocity/    optional, value (F, N, 3) Å/fs
    /particles/all/species      (N,) atomic numbers;  /particles/all/mass (N,) amu as simulated
    /particles/trajectory       hard link to /particles/all (the group name MDAnalysis looks for)
    /observables/dt/            value (F,) ps: the frame interval, which MDAnalysis reads as ``dt``
    /parameters/superion        attrs: symbols, metadata_json, labels_json, temperature_K, wrapped,
                                cell_orientation ("as simulated" | "lower-triangular")

``cell_orientation = "lower-triangular"`` (what ``superion md`` writes): each frame's cell is
rotated to a along x, b in the xy plane (the orientation MDAnalysis and ASE build from lengths
and angles), with positions and velocities rotated with it, so every tool's minimum-image
distances agree. Fractional coordinates, distances and MSDs are unchanged by the rotation; a
cell already in that orientation (cubic, ASE-built cells) is stored bitwise as simulated.

``step``/``time`` are one pair of datasets hard-linked into every element. Datasets are
chunked and resizable (frames are appended one at a time and truncated on resume) and carry
HDF5 fletcher32 checksums, so a damaged chunk is an error naming the dataset, never silent
numbers; :func:`content_digests` (recorded in ``complete.json``) covers everything else. ``time`` is
the run time (equilibration included), so the first production frame has time = M·dt.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from superion.atomic import atomic_path, json_default
from superion.errors import SuperionError
from superion.killpoints import kill_point
from superion.structures.clusters import ClusterLabels
from superion.trajectory.readers import TrajectoryReader, _read_frames

_MAX_BUFFER_BYTES = 64 << 20


# --------------------------------------------------------------------------- writer
class H5TrajectoryWriter:
    """Append frames to an H5MD-style file; ``flush()`` makes everything so far durable.

    Frames are buffered in memory and written by ``flush()`` (called at every checkpoint),
    which opens the file, appends, flushes and closes it again: the HDF5 file is open only for
    milliseconds per checkpoint, so a ``kill -9`` almost never hits an open file (HDF5 files
    killed while open can be unreadable), and readers can look at a running simulation.
    """

    def __init__(self, path: str | os.PathLike, n_on_disk: int, velocities: bool, *, rotate: bool = False,
                 dt_ps: float | None = None) -> None:
        self.path = Path(path)
        self._n_disk = n_on_disk
        self._has_vel = velocities
        self._rotate = rotate
        self._dt_ps = dt_ps
        self._buf: list[tuple] = []

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        symbols: list[str],
        numbers: np.ndarray,
        masses_amu: np.ndarray,
        metadata: dict,
        labels: ClusterLabels | None,
        temperature_K: float | None,
        save_velocities: bool = False,
        dtype: str = "float32",
        creator_version: str = "",
        frame_interval_fs: float | None = None,
        standard_orientation: bool = False,
    ) -> "H5TrajectoryWriter":
        """Create a new, empty trajectory (replacing any file at ``path``).

        ``frame_interval_fs``: written as the ``observables/dt`` MDAnalysis reads (None: none);
        ``standard_orientation``: store each frame rotated to the lower-triangular cell (above).
        """
        import h5py

        path = Path(path)
        n = len(symbols)
        # ~1 MB chunks of whole frames: appends touch one chunk, frame-range reads stay cheap.
        chunk_frames = int(max(1, min(256, (1 << 20) // max(1, n * 3 * np.dtype(dtype).itemsize))))
        # Build the empty file under a temporary name, then rename: a kill here leaves no
        # half-initialised trajectory behind.
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                h5 = f.create_group("h5md")
                h5.attrs["version"] = np.array([1, 1], dtype=np.int32)
                h5.create_group("author").attrs["name"] = os.environ.get("USER", "superion")
                cr = h5.create_group("creator")
                cr.attrs["name"] = "superion"
                cr.attrs["version"] = creator_version
                g = f.create_group("particles/all")
                pos = g.create_group("position")
                step = pos.create_dataset("step", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(4096,),
                                          fletcher32=True)
                time = pos.create_dataset("time", shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(4096,),
                                          fletcher32=True)
                time.attrs["unit"] = "fs"
                v = pos.create_dataset("value", shape=(0, n, 3), maxshape=(None, n, 3), dtype=dtype,
                                       chunks=(chunk_frames, n, 3), fletcher32=True)
                v.attrs["unit"] = "Angstrom"
                box = g.create_group("box")
                box.attrs["dimension"] = np.int32(3)
                box.attrs["boundary"] = np.array([b"periodic"] * 3)
                edges = box.create_group("edges")
                edges["step"] = step
                edges["time"] = time
                e = edges.create_dataset("value", shape=(0, 3, 3), maxshape=(None, 3, 3), dtype=np.float64,
                                         chunks=(4096, 3, 3), fletcher32=True)
                e.attrs["unit"] = "Angstrom"
                if save_velocities:
                    vel = g.create_group("velocity")
                    vel["step"] = step
                    vel["time"] = time
                    vv = vel.create_dataset("value", shape=(0, n, 3), maxshape=(None, n, 3), dtype=dtype,
                                            chunks=(chunk_frames, n, 3), fletcher32=True)
                    vv.attrs["unit"] = "Angstrom fs-1"
                g.create_dataset("species", data=np.asarray(numbers, dtype=np.int32))
                m = g.create_dataset("mass", data=np.asarray(masses_amu, dtype=np.float64))
                m.attrs["unit"] = "amu"
                p = f.create_group("parameters/superion")
                p.attrs["symbols"] = json.dumps(list(symbols))
                p.attrs["metadata_json"] = json.dumps(metadata, default=json_default)
                p.attrs["labels_json"] = json.dumps(labels.to_dict() if labels is not None else None)
                p.attrs["temperature_K"] = np.nan if temperature_K is None else float(temperature_K)
                p.attrs["wrapped"] = False
                p.attrs["cell_orientation"] = "lower-triangular" if standard_orientation else "as simulated"
                f["particles/trajectory"] = g  # hard link: MDAnalysis builds its topology from this name
                if frame_interval_fs is not None:
                    dt = f.create_group("observables/dt")
                    dt["step"] = step
                    dt["time"] = time
                    d = dt.create_dataset("value", shape=(0,), maxshape=(None,), dtype=np.float64,
                                          chunks=(4096,), fletcher32=True)
                    d.attrs["unit"] = "ps"
                    dt.attrs["frame_interval_fs"] = float(frame_interval_fs)
        return cls.open_append(path, keep_frames=0)

    @classmethod
    def open_append(cls, path: str | os.PathLike, keep_frames: int) -> "H5TrajectoryWriter":
        """Open an existing trajectory and drop every frame after the first ``keep_frames``."""
        import h5py

        try:
            f = h5py.File(path, "r+", locking=False)
        except OSError as exc:
            raise SuperionError(
                f"cannot reopen {path} to resume ({exc}); the file is damaged: delete the run directory and rerun"
            ) from None
        with f:
            g = f["particles/all"]
            have = min(g["position/value"].shape[0], g["position/time"].shape[0], g["box/edges/value"].shape[0])
            if have < keep_frames:
                raise SuperionError(
                    f"{path} holds {have} frames but the checkpoint expects {keep_frames}; "
                    "the run directory is inconsistent: delete it and rerun"
                )
            _resize(g, keep_frames)
            _resize_dt(f, keep_frames)
            velocities = "velocity" in g
            p = f["parameters/superion"].attrs if "parameters/superion" in f else {}
            rotate = p.get("cell_orientation", "as simulated") == "lower-triangular"
            dt_ps = (f["observables/dt"].attrs["frame_interval_fs"] / 1000.0) if "observables/dt" in f else None
        return cls(path, keep_frames, velocities, rotate=rotate, dt_ps=dt_ps)

    @property
    def n_frames(self) -> int:
        """Frames written so far (on disk plus buffered)."""
        return self._n_disk + len(self._buf)

    def append(self, step: int, time_fs: float, positions_A: np.ndarray, cell_A: np.ndarray,
               velocities_A_fs: np.ndarray | None = None) -> None:
        """Buffer one frame (copied); written at the next ``flush()``."""
        if self._has_vel and velocities_A_fs is None:
            raise ValueError("this trajectory stores velocities; pass velocities_A_fs")
        pos, cell = np.array(positions_A, copy=True), np.array(cell_A, copy=True)
        vel = None if not self._has_vel else np.array(velocities_A_fs, copy=True)
        if self._rotate:
            cell, rot = lower_triangular(cell)
            if rot is not None:
                pos = pos @ rot
                vel = None if vel is None else vel @ rot
        self._buf.append((int(step), float(time_fs), pos, cell, vel))
        # Bound memory for huge checkpoint intervals: writing early is safe, since a resume
        # truncates the file to the frame count stored in the checkpoint anyway.
        if len(self._buf) * self._buf[0][2].nbytes * (2 if self._has_vel else 1) > _MAX_BUFFER_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write buffered frames and flush the file to the OS."""
        if not self._buf:
            return
        import h5py

        n0, k = self._n_disk, len(self._buf)
        # locking=False: a user reading the running trajectory must not crash the simulation.
        with h5py.File(self.path, "r+", locking=False) as f:
            g = f["particles/all"]
            _resize(g, n0 + k)
            kill_point("h5-flush", self._buf[-1][0])
            g["position/step"][n0:] = [b[0] for b in self._buf]
            g["position/time"][n0:] = [b[1] for b in self._buf]
            g["position/value"][n0:] = np.stack([b[2] for b in self._buf])
            g["box/edges/value"][n0:] = np.stack([b[3] for b in self._buf])
            if self._has_vel:
                g["velocity/value"][n0:] = np.stack([b[4] for b in self._buf])
            if self._dt_ps is not None and "observables/dt" in f:
                _resize_dt(f, n0 + k)
                f["observables/dt/value"][n0:] = self._dt_ps
            f.flush()
        _fsync(self.path)  # the checkpoint written next must never point at frames a crash could lose
        self._n_disk += k
        self._buf.clear()

    def close(self) -> None:
        """Write what is buffered (a failed run keeps its frames up to the failure)."""
        self.flush()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _resize(g, n: int) -> None:
    """Resize all per-frame datasets of ``particles/all`` to ``n`` frames (step/time are shared)."""
    g["position/step"].resize((n,))
    g["position/time"].resize((n,))
    g["position/value"].resize(n, axis=0)
    g["box/edges/value"].resize(n, axis=0)
    if "velocity" in g:
        g["velocity/value"].resize(n, axis=0)


def _resize_dt(f, n: int) -> None:
    if "observables/dt" in f:
        f["observables/dt/value"].resize((n,))


def lower_triangular(cell_A: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(cell rotated so that a ∥ x and b in the xy plane — rows lower-triangular, positive
    diagonal —, rotation Q with ``cell @ Q``) ; Q is None when the cell already is so (stored as is).

    QR of cellᵀ: cellᵀ = Q R  ⇒  cell Q = Rᵀ, lower-triangular; signs make R's diagonal positive,
    so for a right-handed cell Q is a proper rotation. Positions rotate as ``positions @ Q``.
    """
    A = np.asarray(cell_A, dtype=np.float64)
    if A[0, 1] == 0 and A[0, 2] == 0 and A[1, 2] == 0 and (np.diag(A) > 0).all():
        return A, None
    q, r = np.linalg.qr(A.T)
    s = np.where(np.diag(r) < 0, -1.0, 1.0)
    q = q * s
    L = A @ q
    L[0, 1] = L[0, 2] = L[1, 2] = 0.0  # exact zeros where rounding left ~1e-16
    return L, q


def _raw_chunks_readable(ds) -> bool:
    """Whether the chunks of an (F, N, 3) dataset can be read as raw bytes: chunks of whole
    frames, no filters but a fletcher32 checksum (verified here, :func:`fletcher32_ok`; no
    compression, shuffle, scale-offset), native byte order, and every chunk written (an
    unwritten chunk has no bytes to read)."""
    try:
        if ds.chunks is None or tuple(ds.chunks[1:]) != tuple(ds.shape[1:]) or not ds.dtype.isnative:
            return False
        if ds.id.get_create_plist().get_nfilters() != (1 if ds.fletcher32 else 0):
            return False  # compression, shuffle, scale-offset or any other filter
        return ds.id.get_num_chunks() == -(-ds.shape[0] // ds.chunks[0])
    except Exception:  # an h5py/HDF5 without chunk queries: take the general path
        return False


def fletcher32_ok(raw: bytes) -> bool:
    """Whether a raw HDF5 chunk (data + 4-byte fletcher32 trailer) matches its checksum.

    HDF5's Fletcher-32 over big-endian 16-bit words: sum1 = Σ w_i, sum2 = Σ (n − i) w_i, both
    mod 65535 (HDF5 folds with end-around carry, equal mod 65535). Old HDF5 versions stored
    the checksum byte-swapped; HDF5 accepts both, and so does this.
    """
    data = raw[:-4]
    if len(data) % 2:
        data += b"\0"
    w = np.frombuffer(data, dtype=">u2").astype(np.int64)
    s1 = int(w.sum()) % 65535
    s2 = int((w * np.arange(w.size, 0, -1, dtype=np.int64)).sum()) % 65535
    for c in (int.from_bytes(raw[-4:], "little"), int.from_bytes(raw[-4:], "big")):
        if (c & 0xFFFF) % 65535 == s1 and (c >> 16) % 65535 == s2:
            return True
    return False


def damaged(path, dataset: str, exc: BaseException | None = None) -> SuperionError:
    """The one-line error for a dataset whose bytes do not match their checksum or digest."""
    why = f" ({' '.join(str(exc).split())[:120]})" if exc is not None else " (HDF5 checksum failed)"
    return SuperionError(f"{path}: dataset {dataset} is damaged{why}; restore the file from a backup or "
                         "delete the run directory and rerun superion md")


def content_digests(path: str | os.PathLike, block_frames: int = 256) -> dict[str, str]:
    """sha256 (hex) of each per-frame dataset's values and of the per-atom data and attributes.

    Independent of the HDF5 layout (a resumed run's file differs in bytes, not in content), so
    ``complete.json`` of a resumed run equals the uninterrupted one's. Reads everything once.
    """
    import hashlib

    import h5py

    out: dict[str, str] = {}
    with h5py.File(path, "r") as f:
        g = f["particles/all"]
        names = ["position/step", "position/time", "position/value", "box/edges/value"]
        names += ["velocity/value"] if "velocity" in g else []
        for name in names:
            ds, h = g[name], hashlib.sha256()
            try:
                for s in range(0, ds.shape[0], block_frames):
                    h.update(np.ascontiguousarray(ds[s : s + block_frames]).tobytes())
            except OSError as exc:
                raise damaged(path, f"particles/all/{name}", exc) from None
            out[f"particles/all/{name}"] = h.hexdigest()
        h = hashlib.sha256()
        for name in ("species", "mass"):
            h.update(np.ascontiguousarray(g[name][()]).tobytes())
        attrs = f["parameters/superion"].attrs
        for k in sorted(attrs):
            h.update(k.encode() + b"=" + _attr_bytes(attrs[k]) + b";")
        out["particles/all/{species,mass} + parameters/superion"] = h.hexdigest()
    return out


def _attr_bytes(v) -> bytes:
    """An attribute's value as bytes that do not depend on NumPy's or h5py's repr (versions change)."""
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode()
    a = np.asarray(v)
    if a.dtype.kind in "OSU":
        return "\x1f".join(x.decode() if isinstance(x, bytes) else str(x) for x in a.ravel()).encode()
    return a.dtype.str.encode() + np.ascontiguousarray(a).tobytes()


def verify_digests(path: str | os.PathLike, expected: dict[str, str], recorded_in: str | os.PathLike) -> None:
    """SuperionError naming the first dataset whose content differs from ``expected``."""
    got = content_digests(path)
    for name, digest in expected.items():
        if got.get(name) != digest:
            raise SuperionError(
                f"{path} changed after the run finished (dataset {name}: digest differs from {recorded_in}); "
                "restore the file from a backup or delete the run directory and rerun superion md")


class H5TrajectoryReader(TrajectoryReader):
    """Reader of superion's ``trajectory.h5`` (and other H5MD files with the same layout)."""

    def __init__(self, path: str | os.PathLike, metadata: dict | None = None) -> None:
        import h5py

        self.path = Path(path)
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as exc:
            raise SuperionError(f"cannot open trajectory {self.path} ({exc}); is it an HDF5 file?") from None
        try:
            g = self._f["particles/all"]
            self._pos = g["position/value"]
            self._box = g["box/edges/value"]
            self._vel = g["velocity/value"] if "velocity" in g else None
            self.times_fs = np.asarray(self._read(g["position/time"], slice(None)), dtype=float)
            self.steps = np.asarray(self._read(g["position/step"], slice(None)), dtype=np.int64)
            p = self._f["parameters/superion"].attrs if "parameters/superion" in self._f else {}
        except SuperionError:
            self._f.close()
            raise
        except KeyError as exc:
            self._f.close()
            raise SuperionError(f"{self.path} is not an H5MD trajectory written by superion (missing {exc})") from None
        from ase.data import chemical_symbols

        try:  # attributes and per-atom data: a damaged file must not end in a JSON/HDF5 traceback
            if "symbols" in p:
                self.symbols = list(json.loads(p["symbols"]))
            else:
                self.symbols = [chemical_symbols[int(z)] for z in g["species"][:]]
            self.masses = np.asarray(g["mass"][:], dtype=float)
            self.metadata = metadata if metadata is not None else json.loads(p.get("metadata_json", "{}"))
            lab = json.loads(p.get("labels_json", "null"))
        except (ValueError, OSError) as exc:
            self._f.close()
            raise damaged(self.path, "parameters/superion or particles/all/{species,mass}", exc) from None
        self.labels = ClusterLabels.from_dict(lab) if lab else None
        t = p.get("temperature_K", np.nan)
        self.temperature_K = None if t is None or not np.isfinite(t) else float(t)
        self.wrapped = bool(p.get("wrapped", False))
        # A run killed mid-write can hold one frame more in `value` than in `time`; trust the shortest.
        self._n = min(len(self.times_fs), self._pos.shape[0], self._box.shape[0])
        self.times_fs = self.times_fs[: self._n]
        self.steps = self.steps[: self._n]

    @property
    def n_frames(self) -> int:
        return self._n

    def _read(self, ds, frames, n: int | None = None):
        """Frames of ``ds``; a checksum failure becomes the one-line :func:`damaged` error."""
        try:
            return _read_frames(ds, frames, ds.shape[0] if n is None else n)
        except OSError as exc:
            raise damaged(self.path, ds.name, exc) from None

    def cells(self, frames=slice(None)) -> np.ndarray:
        return np.asarray(self._read(self._box, frames, self._n), dtype=np.float64)

    def positions(self, frames=slice(None), atoms=None) -> np.ndarray:
        data = self._read(self._pos, frames, self._n)
        if atoms is not None:
            data = data[:, atoms]
        return np.asarray(data, dtype=np.float64)

    def iter_positions_stored(self, chunk_frames: int):
        """Yield ``(frames, positions)`` over all frames in order: slices of about
        ``chunk_frames`` frames (raw chunks: the file's chunk length) and (f, N, 3) Å arrays
        in the stored precision, read-only views valid until the next step. Readers without
        this method are read through ``positions()`` (:func:`superion.analysis.unwrap.iter_stored`)."""
        ds = self._pos
        if _raw_chunks_readable(ds):
            # Uncompressed chunks of whole frames: hand out each chunk's bytes as they are on
            # disk (one copy from the page cache, no HDF5 selection machinery): ~2x faster.
            cf = ds.chunks[0]
            nbytes = cf * int(np.prod(ds.shape[1:])) * ds.dtype.itemsize
            for start in range(0, self._n, cf):
                stop = min(start + cf, self._n)
                raw = ds.id.read_direct_chunk((start, 0, 0))[1]
                if ds.fletcher32 and not fletcher32_ok(raw):
                    raise damaged(self.path, ds.name)
                data = np.frombuffer(raw, dtype=ds.dtype, count=nbytes // ds.dtype.itemsize)
                yield slice(start, stop), data.reshape((cf,) + ds.shape[1:])[: stop - start]
            return
        # read_direct into one reused buffer: no fresh memory per chunk (page faults of new
        # memory cost more than the read on some virtual machines)
        buf = np.empty((min(chunk_frames, self._n),) + ds.shape[1:], dtype=ds.dtype)
        for start in range(0, self._n, chunk_frames):
            f = min(chunk_frames, self._n - start)
            try:
                ds.read_direct(buf, np.s_[start : start + f], np.s_[0:f])
            except OSError as exc:
                raise damaged(self.path, ds.name, exc) from None
            yield slice(start, start + f), buf[:f]

    def velocities(self, frames=slice(None), atoms=None) -> np.ndarray | None:
        if self._vel is None:
            return None
        data = self._read(self._vel, frames, self._n)
        if atoms is not None:
            data = data[:, atoms]
        return np.asarray(data, dtype=np.float64)

    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()

