"""Rotation of polyanion clusters: the study's rotation speed and orientational correlations.

Clusters are unwrapped as wholes: every atom is unwrapped frame to frame (NPT-safe, see
:mod:`superion.analysis.unwrap`) after each cluster is made whole at the first frame, so a cluster is
never split by the periodic boundary. Centre = cluster centre of mass (masses as simulated;
mass scaling multiplies all atoms of a cluster by the same factor, so the centre is unchanged).

- Rotation speed (science.md), rad/ps, for a lag τ:
  speed(τ) = ⟨ 1/(n_atoms R τ) Σ_i ‖(r_i(t+τ) − r_i(t)) − (R_com(t+τ) − R_com(t))‖ ⟩
  over all atoms of the cluster, time origins and clusters of one type; R = mean centre-to-
  vertex distance. Default τ = 1 ps (beyond libration, below most reorientation times); the
  whole curve speed(τ) is saved.
- Orientational autocorrelation of the centre-to-vertex unit vectors u (vertex = H for
  boranes, S for PS4): C1(t) = ⟨u(0)·u(t)⟩, C2(t) = ⟨P2(u(0)·u(t))⟩ over all origins (FFT).
- Distribution of the angle a vertex vector turns within the rotation lag (2° bins, saved
  with the curves) and its mean.
- Relaxation time: C(t) is fitted with A·exp(−(t/τ)^β) (stretched exponential; A < 1 absorbs
  the fast librational drop) on 0 < t ≤ half the duration. If C does not fall below 1/e in
  that window the time is not measured: ``c*_tau_ps`` is null, ``c*_decayed`` false and
  ``c*_tau_lower_bound_ps`` gives the window end (the extrapolated fit is kept for reference).
  For isotropic rotational diffusion C_l = exp(−l(l+1) D_r t): τ1 = 1/(2 D_r), τ2 = 1/(6 D_r).
"""

from __future__ import annotations

import os

import numpy as np

from superion.errors import SuperionError

VERTEX_ELEMENTS = ("H", "S", "O", "F", "Cl", "Br", "I")
DEFAULT_ROTATION_LAG_PS = 1.0
DEFAULT_MAX_BYTES = 512_000_000  # per group of clusters; each group is one pass over the file


def vertex_element(symbols: list[str]) -> str | None:
    """Element marking the cluster's vertices (H for B12H12/BH4, S for PS4)."""
    present = set(symbols)
    for el in VERTEX_ELEMENTS:
        if el in present:
            return el
    return None


def orientational_correlation(u: np.ndarray, max_bytes: float = 64e6) -> tuple[np.ndarray, np.ndarray]:
    """C1(t), C2(t) (each (T,)) averaged over unit-vector series u (s, 3, T).

    Vectors are processed in batches whose FFT transients (~250 bytes × T per vector) stay
    below ``max_bytes``; the correlations are :func:`superion.analysis.correlation.autocorrelation`.
    """
    from superion.analysis.correlation import autocorrelation

    s, _, T = u.shape
    batch = max(1, int(max_bytes // (250 * T)))
    c1 = np.zeros(T)
    cos2 = np.zeros(T)
    pairs = [(k, l) for k in range(3) for l in range(k, 3)]
    # <(u0·ut)²> = Σ_kl <u_k u_l (0) u_k u_l (t)>: 3 diagonal + 3 off-diagonal (×2) products
    weights = np.array([1.0 if k == l else 2.0 for k, l in pairs])
    for a in range(0, s, batch):
        ub = u[a : a + batch]
        nb = ub.shape[0]
        c1 += autocorrelation(ub.reshape(nb * 3, T)).reshape(nb, 3, T).sum(axis=1).sum(axis=0)
        p = np.stack([ub[:, k] * ub[:, l] for k, l in pairs], axis=1)  # (nb, 6, T)
        cc = autocorrelation(p.reshape(nb * 6, T)).reshape(nb, 6, T)
        cos2 += np.tensordot(weights, cc, axes=([0], [1])).sum(axis=0)
    return c1 / s, 1.5 * cos2 / s - 0.5


def fit_relaxation(t_ps: np.ndarray, c: np.ndarray, t_max_ps: float) -> dict:
    """Stretched-exponential fit of a decaying correlation; see module docstring for flags."""
    from math import gamma

    from scipy.optimize import curve_fit

    sel = (t_ps > 0) & (t_ps <= t_max_ps)
    t, y = t_ps[sel], c[sel]
    out = {"tau_ps": None, "tau_fit_ps": None, "beta": None, "amplitude": None, "tau_mean_ps": None,
           "tau_1e_ps": None, "decayed": False, "tau_lower_bound_ps": float(t_max_ps)}
    if len(t) < 4:
        return out
    below = np.flatnonzero(y < np.exp(-1))
    if below.size:
        i = below[0]
        if i == 0:
            out["tau_1e_ps"] = float(t[0])
        else:  # linear interpolation between the bracketing points
            y0, y1 = y[i - 1], y[i]
            out["tau_1e_ps"] = float(t[i - 1] + (y0 - np.exp(-1)) / (y0 - y1) * (t[i] - t[i - 1]))
        out["decayed"] = True
        out["tau_lower_bound_ps"] = None
    stride = max(1, len(t) // 2000)
    tf, yf = t[::stride], y[::stride]
    guess = out["tau_1e_ps"] or float(t_max_ps)

    def kww(tt, a, tau, beta):
        return a * np.exp(-((tt / tau) ** beta))

    try:
        (a, tau, beta), _ = curve_fit(
            kww, tf, yf, p0=(min(1.0, max(yf[0], 0.1)), guess, 1.0),
            bounds=([1e-3, 1e-6, 0.1], [1.5, 1e6, 2.0]), maxfev=20000,
        )
        out.update(tau_fit_ps=float(tau), beta=float(beta), amplitude=float(a), tau_mean_ps=float(tau / beta * gamma(1 / beta)))
        if out["decayed"]:
            out["tau_ps"] = float(tau)
    except (RuntimeError, ValueError):
        if out["decayed"]:
            out["tau_ps"] = out["tau_1e_ps"]
    return out


def labels_of(traj):
    """Cluster labels of a trajectory: stored ones, else from connectivity of the first frame."""
    if getattr(traj, "labels", None) is not None:
        return traj.labels
    from ase import Atoms

    from superion.structures.clusters import label_clusters

    atoms = Atoms(traj.symbols, positions=traj.positions(slice(0, 1))[0], cell=traj.cells(slice(0, 1))[0], pbc=True)
    return label_clusters(atoms)


def rotation_of_type(
    traj,
    atom_idx: np.ndarray,
    cluster_ids: np.ndarray,
    frame_interval_fs: float,
    *,
    lag_ps: float = DEFAULT_ROTATION_LAG_PS,
    max_bytes: float = DEFAULT_MAX_BYTES,
    chunk_frames: int = 2000,
) -> tuple[dict, dict]:
    """Rotation analysis of all clusters of one type.

    atom_idx: atoms of those clusters; cluster_ids: their cluster id (same length). Clusters
    are processed in groups so that their unwrapped trajectories fit in ``max_bytes``.
    Returns (summary, curves).
    """
    from superion.analysis.kernels import as_c64, rotation_displacement_norms
    from superion.analysis.unwrap import iter_unwrapped

    F = int(traj.n_frames)
    dt_ps = frame_interval_fs / 1000.0
    duration = (F - 1) * dt_ps
    symbols = np.asarray(traj.symbols)
    masses = np.asarray(traj.masses, dtype=float)
    clusters = np.unique(cluster_ids)
    n_at = len(atom_idx) // len(clusters)
    per_cluster_bytes = n_at * 3 * F * 8 * 3  # positions + relative vectors + unit vectors
    group = max(1, int(max_bytes // per_cluster_bytes))
    vel = vertex_element(symbols[atom_idx].tolist())
    # lags for the speed curve: ~40 log-spaced frame offsets up to half the run
    max_lag = max(1, (F - 1) // 2)
    lags = np.unique(np.round(np.logspace(0, np.log10(max_lag), 40)).astype(int))
    want = int(round(lag_ps / dt_ps))
    warnings = []
    if want < 1 or want > max_lag:
        new = min(max(want, 1), max_lag)
        warnings.append(f"rotation lag {lag_ps:g} ps outside 1 frame..half the run; used {new * dt_ps:g} ps")
        want = new
    lags = np.unique(np.append(lags, want))

    sum_norm = np.zeros(len(lags))  # Σ over clusters of Σ_i mean_t ‖Δrel_i‖
    R_sum, R_count = 0.0, 0
    c1 = np.zeros(F)
    c2 = np.zeros(F)
    n_vertex_total = 0
    # distribution of the angle turned by a vertex vector within the rotation lag
    angle_edges = np.linspace(0.0, 180.0, 91)
    angle_hist = np.zeros(90)
    angle_sum, angle_n = 0.0, 0
    for g0 in range(0, len(clusters), group):
        cl = clusters[g0 : g0 + group]
        sel = np.isin(cluster_ids, cl)
        idx, cid = atom_idx[sel], cluster_ids[sel]
        pos = np.empty((len(idx), 3, F))
        for frames, p, _ in iter_unwrapped(traj, idx, chunk_frames=chunk_frames, groups=cid):
            pos[:, :, frames] = p.transpose(1, 2, 0)
        rel = np.empty_like(pos)
        for k in cl:
            m = cid == k
            w = masses[idx[m]] / masses[idx[m]].sum()
            com = np.einsum("n,nkt->kt", w, pos[m])
            rel[m] = pos[m] - com[None]
        del pos
        rel = as_c64(rel)
        vmask = symbols[idx] == vel if vel else np.ones(len(idx), dtype=bool)
        norms_v = np.sqrt((rel[vmask] ** 2).sum(axis=1))  # (n_v, F)
        if np.any(norms_v < 1e-6):
            raise SuperionError("a cluster vertex sits on the cluster centre; cluster labels look wrong")
        R_sum += float(norms_v.sum())
        R_count += norms_v.size
        buf = np.empty(len(idx))
        for j, lag in enumerate(lags):
            rotation_displacement_norms(rel, int(lag), buf)
            sum_norm[j] += buf.sum()
        u = rel[vmask] / norms_v[:, None, :]
        cosang = np.clip(np.einsum("skt,skt->st", u[:, :, want:], u[:, :, :-want]), -1.0, 1.0)
        ang = np.degrees(np.arccos(cosang))
        angle_hist += np.histogram(ang, bins=angle_edges)[0]
        angle_sum += float(ang.sum())
        angle_n += ang.size
        del cosang, ang
        a, b = orientational_correlation(u)
        c1 += a * u.shape[0]
        c2 += b * u.shape[0]
        n_vertex_total += u.shape[0]
    R = R_sum / R_count
    n_clusters = len(clusters)
    speed = sum_norm / (n_clusters * n_at * R * lags * dt_ps)
    c1 /= n_vertex_total
    c2 /= n_vertex_total
    t_ps = np.arange(F) * dt_ps
    t_max = 0.5 * duration
    f1 = fit_relaxation(t_ps, c1, t_max)
    f2 = fit_relaxation(t_ps, c2, t_max)
    j = int(np.flatnonzero(lags == want)[0])
    summary = {
        "n_clusters": int(n_clusters),
        "atoms_per_cluster": int(n_at),
        "vertex_element": vel,
        "radius_A": R,
        "rotation_lag_ps": float(want * dt_ps),
        "rotation_speed_rad_ps": float(speed[j]),
        "mean_jump_angle_deg": angle_sum / angle_n,
    }
    for name, f in (("c1", f1), ("c2", f2)):
        summary[f"{name}_tau_ps"] = f["tau_ps"]
        summary[f"{name}_decayed"] = f["decayed"]
        summary[f"{name}_tau_lower_bound_ps"] = f["tau_lower_bound_ps"]
        summary[f"{name}_tau_1e_ps"] = f["tau_1e_ps"]
        summary[f"{name}_tau_fit_ps"] = f["tau_fit_ps"]
        summary[f"{name}_beta"] = f["beta"]
        summary[f"{name}_amplitude"] = f["amplitude"]
        summary[f"{name}_tau_mean_ps"] = f["tau_mean_ps"]
        if not f["decayed"]:
            warnings.append(f"{name.upper()} stays above 1/e up to {t_max:.3g} ps: relaxation time > {t_max:.3g} ps (not measured)")
    summary["warnings"] = warnings
    stride = max(1, F // 10000)
    curves = {"t_ps": t_ps[::stride], "c1": c1[::stride], "c2": c2[::stride], "speed_lag_ps": lags * dt_ps, "speed_rad_ps": speed,
              "jump_angle_edges_deg": angle_edges, "jump_angle_probability": angle_hist / max(angle_hist.sum(), 1.0)}
    return summary, curves


def analyze_rotation(
    traj,
    *,
    labels=None,
    lag_ps: float = DEFAULT_ROTATION_LAG_PS,
    max_bytes: float = DEFAULT_MAX_BYTES,
) -> tuple[dict, dict]:
    """Rotation analysis per cluster type: ({type: summary}, {f"{type}_{curve}": array}).

    The time between frames is the reader's ``frame_interval_fs``."""
    if traj.n_frames == 0:
        raise SuperionError("trajectory has no frames; check the file or the run directory")
    if traj.n_frames < 3:
        raise SuperionError(f"trajectory has {traj.n_frames} frame(s); rotation analysis needs at least 3 frames")
    dt = traj.frame_interval_fs
    labels = labels if labels is not None else labels_of(traj)
    if labels is None or labels.n_clusters == 0:
        raise SuperionError("no molecular clusters (BH4, B12H12, PS4, ...) found in the trajectory; nothing rotates")
    results, curves = {}, {}
    for ctype in sorted(set(labels.types)):
        idx = labels.atoms_of_type(ctype)
        summary, cur = rotation_of_type(traj, idx, labels.cluster_id[idx], dt, lag_ps=lag_ps, max_bytes=max_bytes)
        results[ctype] = summary
        for k, v in cur.items():
            curves[f"{ctype}_{k}"] = v
    return results, curves


def write_rotation(
    trajectory: str | os.PathLike,
    json_path: str | os.PathLike,
    *,
    frame_interval_fs: float | None = None,
    lag_ps: float = DEFAULT_ROTATION_LAG_PS,
    open_options: dict | None = None,
) -> dict:
    """``superion analyze rotation``: open ``trajectory`` (run directory or file, with
    ``frame_interval_fs`` fs between frames if given), analyse every cluster type
    (:func:`analyze_rotation`), write ``{type: summary}`` (each with source, curves file and
    version) to ``json_path`` and the curves beside it (.npz). Returns what was written.
    ``open_options`` go to :func:`~superion.trajectory.open_trajectory` (format, type_map, topology)."""
    from superion import __version__
    from superion.analysis.outputs import curves_path, write_result
    from superion.paths import check_writable
    from superion.trajectory import open_trajectory

    if not lag_ps > 0:  # before the trajectory is read
        raise SuperionError(f"--rotation-lag-ps {lag_ps}: give a positive lag in ps")
    check_writable(json_path)
    with open_trajectory(trajectory, frame_interval_fs, **(open_options or {})) as traj:
        results, curves = analyze_rotation(traj, lag_ps=lag_ps)
    npz = curves_path(json_path)
    # keyed by cluster type only (scripts iterate over it); provenance goes into each entry
    for r in results.values():
        r.update(source=str(trajectory), curves_file=npz.name, superion_version=__version__)
    write_result(json_path, results, curves)
    return results
