"""Point-charge Ewald energies (eV) of charges at fractional positions in a periodic cell."""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

from superion.errors import SuperionError
from superion.units import COULOMB_EV_A


def ewald_pair_matrix(lattice: np.ndarray, frac: np.ndarray, accuracy: float = 1e-6) -> np.ndarray:
    """Periodic Coulomb potential φ_ij (eV per e²) between unit charges at ``frac`` (n, 3).

    Energy of charges q with Σq = 0 is ½ qᵀ φ q (+ constant self terms on the diagonal,
    included here, so ½ qᵀ φ q is the full Ewald energy for a neutral set).
    """
    lattice = np.asarray(lattice, float)
    frac = np.atleast_2d(np.asarray(frac, float))
    n = len(frac)
    vol = abs(np.linalg.det(lattice))
    eta = (n * math.pi**3 / vol**2) ** (1 / 6) if n > 1 else math.sqrt(math.pi) / vol ** (1 / 3)
    eta = max(eta, 0.2)
    rc = math.sqrt(-math.log(accuracy)) / eta
    kc = 2 * eta * math.sqrt(-math.log(accuracy))
    from scipy.special import erfc

    cart = frac @ lattice
    # real space
    recip = 2 * math.pi * np.linalg.inv(lattice).T
    nmax = [int(math.ceil(rc * np.linalg.norm(recip[i]) / (2 * math.pi))) + 1 for i in range(3)]
    shifts = np.array(list(itertools.product(*(range(-m, m + 1) for m in nmax))), float) @ lattice
    d = cart[:, None, None, :] - cart[None, :, None, :] + shifts[None, None, :, :]
    r = np.linalg.norm(d, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        real = np.where((r > 1e-10) & (r < rc), erfc(eta * r) / r, 0.0).sum(axis=-1)
    # reciprocal space
    kmax = [int(math.ceil(kc / np.linalg.norm(recip[i]))) + 1 for i in range(3)]
    ks = np.array([m for m in itertools.product(*(range(-k, k + 1) for k in kmax)) if any(m)], float) @ recip
    k2 = np.einsum("ij,ij->i", ks, ks)
    ks, k2 = ks[k2 < kc**2], k2[k2 < kc**2]
    phase = cart @ ks.T  # (n, K)
    weight = 4 * math.pi / vol * np.exp(-k2 / (4 * eta**2)) / k2
    cos_ = np.cos(phase)
    sin_ = np.sin(phase)
    rec = (cos_ * weight) @ cos_.T + (sin_ * weight) @ sin_.T
    phi = real + rec
    phi[np.diag_indices(n)] -= 2 * eta / math.sqrt(math.pi)
    return phi * COULOMB_EV_A


def ewald_energy_eV(lattice: np.ndarray, frac: np.ndarray, charges: Sequence[float]) -> float:
    """Point-charge Ewald energy in eV of a neutral set of charges (units of e)."""
    q = np.asarray(charges, float)
    if abs(q.sum()) > 1e-6:
        raise SuperionError(f"point charges do not sum to zero (total {q.sum():+g} e)")
    return float(0.5 * q @ ewald_pair_matrix(lattice, frac) @ q)
