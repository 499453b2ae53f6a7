"""Cluster rotation: rotation speed of rigid rotors, C1/C2 times of rotational diffusion."""

from __future__ import annotations

import numpy as np
import pytest

from superion.structures.clusters import ClusterLabels
from superion.errors import SuperionError
from superion.analysis.kernels import as_c64, rotation_displacement_norms
from superion.analysis.rotation import analyze_rotation, orientational_correlation
from superion.analysis.unwrap import to_fractional
from superion.trajectory import ArrayTrajectory

TETRA = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3)


def rodrigues(v, omega):
    """Rotate vectors v (..., 3) by rotation vectors omega (..., 3) (angle = |omega|)."""
    th = np.linalg.norm(omega, axis=-1, keepdims=True)
    k = np.divide(omega, th, out=np.zeros_like(omega), where=th > 0)
    return v * np.cos(th) + np.cross(k, v) * np.sin(th) + k * np.sum(k * v, axis=-1, keepdims=True) * (1 - np.cos(th))


def bh4_system(orientations, centres, cells, bond=1.2, wrapped=True):
    """Positions (F, 5 n, 3) of BH4 clusters: orientations (F, n, 4, 3) unit vectors, centres (n, 3)."""
    F, n = orientations.shape[:2]
    pos = np.empty((F, n, 5, 3))
    pos[:, :, 0] = centres
    pos[:, :, 1:] = centres[None, :, None, :] + bond * orientations
    pos = pos.reshape(F, n * 5, 3)
    if wrapped:
        frac = to_fractional(pos, cells)
        frac -= np.floor(frac)
        pos = np.einsum("fnj,fjk->fnk", frac, cells)
    symbols = (["B"] + ["H"] * 4) * n
    masses = np.array([10.81, 1.008, 1.008, 1.008, 1.008] * n)
    labels = ClusterLabels(np.repeat(np.arange(n), 5), ["BH4"] * n)
    return pos, symbols, masses, labels


def test_norm_kernel_matches_numpy():
    rng = np.random.default_rng(31)
    rel = as_c64(rng.standard_normal((5, 3, 50)))
    out = np.empty(5)
    rotation_displacement_norms(rel, 7, out)
    assert np.allclose(out, np.linalg.norm(rel[:, :, 7:] - rel[:, :, :-7], axis=1).mean(axis=1))


def test_orientational_correlation_matches_direct_average():
    rng = np.random.default_rng(36)
    u = rng.standard_normal((5, 3, 40))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    T = u.shape[2]
    dots = [np.einsum("skt,skt->st", u[:, :, m:], u[:, :, : T - m]) for m in range(T)]
    c1_ref = np.array([d.mean() for d in dots])
    c2_ref = np.array([(1.5 * d**2 - 0.5).mean() for d in dots])
    for max_bytes in (1e9, 1.0):  # all at once, and one vector per batch
        c1, c2 = orientational_correlation(u, max_bytes=max_bytes)
        assert np.allclose(c1, c1_ref) and np.allclose(c2, c2_ref)


def test_rotational_diffusion_recovers_c1_c2_times():
    rng = np.random.default_rng(32)
    Dr = 0.25  # rad²/ps → τ1 = 1/(2 Dr) = 2 ps, τ2 = 1/(6 Dr) = 0.667 ps
    n, F, dt_fs = 24, 2000, 20.0
    kicks = np.sqrt(2 * Dr * dt_fs / 1000.0) * rng.standard_normal((F, n, 3))
    orient = np.empty((F, n, 4, 3))
    orient[0] = rodrigues(np.broadcast_to(TETRA, (n, 4, 3)), rng.standard_normal((n, 1, 3)))
    for t in range(1, F):  # small random rotation about a random axis per step, same for the whole cluster
        orient[t] = rodrigues(orient[t - 1], np.broadcast_to(kicks[t][:, None, :], (n, 4, 3)))
    cells = np.diag([20.0, 21.0, 22.0])[None] * (1 + 0.02 * np.sin(np.arange(F) / 50.0))[:, None, None]
    centres = rng.random((n, 3)) * 20
    centres[0] = [0.1, 0.1, 0.1]  # split across the corner in the wrapped first frame
    pos, symbols, masses, labels = bh4_system(orient, centres, cells)
    traj = ArrayTrajectory(pos, cells, np.arange(F) * dt_fs, symbols, masses, labels=labels)
    res, curves = analyze_rotation(traj)
    r = res["BH4"]
    assert r["n_clusters"] == n and r["vertex_element"] == "H"
    assert r["radius_A"] == pytest.approx(1.2, rel=0.02)  # cell breathing changes it slightly
    assert r["c1_decayed"] and r["c2_decayed"]
    assert r["c1_tau_ps"] == pytest.approx(1 / (2 * Dr), rel=0.15)
    assert r["c2_tau_ps"] == pytest.approx(1 / (6 * Dr), rel=0.15)
    assert r["c1_beta"] == pytest.approx(1.0, abs=0.15)
    assert curves["BH4_c1"][0] == pytest.approx(1.0) and curves["BH4_c2"][0] == pytest.approx(1.0)


def test_rigid_rotor_speed_matches_formula():
    rng = np.random.default_rng(33)
    omega = 0.5  # rad/ps about z
    n, F, dt_fs = 3, 400, 10.0
    t_ps = np.arange(F) * dt_fs / 1000.0
    base = rodrigues(np.broadcast_to(TETRA, (n, 4, 3)), rng.standard_normal((n, 1, 3)))
    rot = np.zeros((F, 1, 1, 3))
    rot[..., 2] = omega * t_ps[:, None, None]
    orient = rodrigues(np.broadcast_to(base, (F, n, 4, 3)), np.broadcast_to(rot, (F, n, 4, 3)))
    cells = np.eye(3)[None].repeat(F, axis=0) * 15.0
    centres = rng.random((n, 3)) * 15 + 0.01 * np.arange(n)[:, None]
    pos, symbols, masses, labels = bh4_system(orient, centres, cells)
    # the whole system also drifts: the rotation speed removes each cluster's centre of mass
    pos = pos + (0.3 * t_ps)[:, None, None] * np.array([1.0, 0.5, 0.0])
    traj = ArrayTrajectory(pos, cells, np.arange(F) * dt_fs, symbols, masses, labels=labels)
    res, _ = analyze_rotation(traj, lag_ps=1.0)
    tau, R = 1.0, 1.2
    rho = np.linalg.norm(R * base[..., :2], axis=-1)  # distance of each H from the z axis
    expected = np.sum(2 * rho * np.sin(omega * tau / 2)) / (n * 5 * R * tau)  # B at the centre adds 0
    assert res["BH4"]["rotation_lag_ps"] == pytest.approx(1.0)
    assert res["BH4"]["rotation_speed_rad_ps"] == pytest.approx(expected, rel=1e-6)
    # each H turns by the angle θ with cos θ = cos²α + sin²α cos(ωτ) (α: angle to the axis)
    cos_a = base[..., 2]
    turn = np.degrees(np.arccos(np.clip(cos_a**2 + (1 - cos_a**2) * np.cos(omega * tau), -1, 1)))
    assert res["BH4"]["mean_jump_angle_deg"] == pytest.approx(turn.mean(), rel=1e-6)


def test_frozen_clusters_report_no_tau_with_flag():
    rng = np.random.default_rng(34)
    n, F = 4, 300
    orient = np.broadcast_to(TETRA, (F, n, 4, 3)) + 0.02 * rng.standard_normal((F, n, 4, 3))
    orient /= np.linalg.norm(orient, axis=-1, keepdims=True)
    cells = np.eye(3)[None].repeat(F, axis=0) * 12.0
    pos, symbols, masses, labels = bh4_system(orient, rng.random((n, 3)) * 12, cells)
    traj = ArrayTrajectory(pos, cells, np.arange(F) * 10.0, symbols, masses, labels=labels)
    res, _ = analyze_rotation(traj)
    r = res["BH4"]
    assert r["c1_tau_ps"] is None and r["c1_decayed"] is False
    assert r["c1_tau_lower_bound_ps"] == pytest.approx(0.5 * (F - 1) * 0.01)
    assert any("C1 stays above 1/e" in w for w in r["warnings"])


def test_no_clusters_is_clear_error():
    pos = np.random.default_rng(35).random((10, 4, 3)) * 10
    traj = ArrayTrajectory(pos, np.eye(3) * 10, np.arange(10.0), ["Na"] * 4, np.full(4, 23.0))
    with pytest.raises(SuperionError, match="no molecular clusters"):
        analyze_rotation(traj)
