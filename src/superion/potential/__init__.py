"""M3GNet potentials: registry and resolution, legacy-aggregation loading, self-check, device, parity.

Why this package exists: the shipped checkpoints were trained with matgl <= 2.2 (DGL), whose
M3GNet graph convolution summed node-update messages onto each edge's *destination* atom.
matgl >= 3.0 scatters them onto the *source* atom, so a plain ``matgl.load_model`` silently
gives wrong physics. Modules:

- :mod:`~superion.potential.registry`: the known-model table (``data/known_models.json``),
  the models folders searched (:func:`default_models_dirs`), :func:`resolve_model`.
- :mod:`~superion.potential.compat`: the per-instance matgl <= 2.2 aggregation patch
  (:func:`set_legacy_aggregation`, optional exact DGL three-body indexing).
- :mod:`~superion.potential.loading`: :func:`load_potential` -> :class:`LoadedPotential`
  (checkpoint reading, legacy decision, fingerprint self-check, cache), :func:`get_calculator`.
- :mod:`~superion.potential.device`: :func:`select_device`, :func:`set_threads`.
- :mod:`~superion.potential.parity`: comparison with the matgl 2.2.1 reference (``superion potential check``).

Units: energies eV, forces eV/A, stresses eV/A^3 in ASE sign (positive = tensile).
"""

from __future__ import annotations

from superion.potential import compat as _compat
from superion.potential.compat import set_legacy_aggregation, uses_exact_dgl, uses_legacy_aggregation
from superion.potential.device import select_device, set_threads
from superion.potential.loading import (
    LoadedPotential,
    clear_cache,
    get_calculator,
    load_checked,
    load_potential,
    run_self_check,
)
from superion.potential.parity import ParityReport, check_parity
from superion.potential.registry import (
    DATA_DIR,
    HF_ORG,
    KNOWN_MODELS_FILE,
    MODEL_FILES,
    PARITY_DISTRIBUTIONS,
    UNIVERSAL_MODEL,
    ModelEntry,
    default_models_dirs,
    fingerprint_atoms,
    known_elements,
    known_model_names,
    known_models_table,
    list_models,
    model_available,
    resolve_model,
)

__all__ = [
    "DATA_DIR", "HF_ORG", "KNOWN_MODELS_FILE", "MODEL_FILES", "PARITY_DISTRIBUTIONS", "UNIVERSAL_MODEL",
    "LoadedPotential", "ModelEntry", "ParityReport", "check_parity", "clear_cache", "default_models_dirs",
    "fingerprint_atoms", "get_calculator", "load_checked", "known_elements", "known_model_names", "known_models_table",
    "list_models", "load_potential", "model_available", "resolve_model", "run_self_check", "select_device",
    "set_legacy_aggregation", "set_threads", "uses_exact_dgl", "uses_legacy_aggregation",
]


def __getattr__(name: str):
    # PEP 562: the lazily built matgl subclasses (LegacyM3GNetGraphConv, ...) live in compat
    if name in _compat.LAZY_CLASSES:
        return getattr(_compat, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
