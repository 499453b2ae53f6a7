"""Anion mass scaling: multiply the masses of every atom of chosen cluster types.

The potential energy surface does not depend on masses, so scaling the B and H masses of
e.g. all B12H12 clusters by f slows their rotation (moment of inertia × f) without changing
any interaction (see docs/science.md, "Anion mass scaling"). Masses are in amu.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np

from superion.structures.clusters import ClusterLabels
from superion.errors import SuperionError


def parse_mass_scale(specs: Iterable[str] | Mapping[str, float] | None) -> dict[str, float]:
    """``["B12H12=5", "BH4=2"]`` (or a mapping) → ``{"B12H12": 5.0, "BH4": 2.0}``, validated.

    Raises SuperionError for a malformed item, a repeated type, or a factor that is not a
    finite number > 0.
    """
    if specs is None:
        return {}
    items: list[tuple[str, object]]
    if isinstance(specs, Mapping):
        items = list(specs.items())
    else:
        items = []
        for spec in specs:
            text = str(spec).strip()
            name, sep, value = text.partition("=")
            if not sep or not name.strip() or not value.strip():
                raise SuperionError(
                    f"bad --mass-scale {text!r}; write CLUSTER=FACTOR, e.g. --mass-scale B12H12=5"
                )
            items.append((name.strip(), value.strip()))
    out: dict[str, float] = {}
    for name, value in items:
        try:
            factor = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise SuperionError(
                f"bad mass-scale factor {value!r} for {name}; give a number > 0, e.g. {name}=5"
            ) from None
        if not math.isfinite(factor) or factor <= 0:
            raise SuperionError(f"mass-scale factor for {name} is {value}; it must be a finite number > 0")
        if name in out:
            raise SuperionError(f"mass-scale for {name} given twice; give each cluster type once")
        out[str(name)] = factor
    return out


def scaled_masses(base_masses_amu: np.ndarray, labels: ClusterLabels, mass_scale: Mapping[str, float]) -> np.ndarray:
    """Masses (amu) with every atom of every cluster of type T multiplied by ``mass_scale[T]``.

    A type not present in the structure is an error (a typo would otherwise silently run an
    unscaled simulation).
    """
    masses = np.array(base_masses_amu, dtype=float, copy=True)
    present = sorted(set(labels.types))
    for cluster_type, factor in mass_scale.items():
        if not math.isfinite(factor) or factor <= 0:
            raise SuperionError(f"mass-scale factor for {cluster_type} is {factor}; it must be a finite number > 0")
        idx = labels.atoms_of_type(cluster_type)
        if idx.size == 0:
            raise SuperionError(
                f"mass-scale names cluster type {cluster_type!r}, which is not in this structure "
                f"(present: {', '.join(present) or 'none'}); use one of those names"
            )
        masses[idx] *= factor
    return masses
