"""Loading a checkpoint as a :class:`LoadedPotential`: read, decide the aggregation, self-check, cache.

Units: energies eV, forces eV/A, stresses eV/A^3 in ASE sign (positive = tensile).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from superion.atomic import file_sha256
from superion.errors import SuperionError
from superion.potential import registry
from superion.potential.compat import set_legacy_aggregation
from superion.potential.device import select_device, set_threads
from superion.potential.registry import PARITY_DISTRIBUTIONS, UNIVERSAL_MODEL, resolve_model
from superion.provenance import software_versions

if TYPE_CHECKING:  # pragma: no cover
    from ase import Atoms
    from ase.calculators.calculator import Calculator

log = logging.getLogger(__name__)

_CACHE: dict[tuple, "LoadedPotential"] = {}


def _read_checkpoint(files: dict[str, Path], name: str):
    """Build the matgl Potential from the three files, dropping constructor arguments the
    current ``Potential.__init__`` no longer accepts (e.g. ``calc_site_wise``) and loading
    the weights strictly (only the benign, derived ``*.onehot`` buffers may be absent)."""
    import torch
    from matgl.apps.pes import Potential

    try:
        meta = json.loads(Path(files["model.json"]).read_text())
        args = torch.load(files["model.pt"], map_location="cpu", weights_only=True)
        state = torch.load(files["state.pt"], map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SuperionError(f"cannot read model '{name}' ({type(exc).__name__}: {exc}); the files may be corrupt") from None
    if meta.get("@class") != "Potential" or not isinstance(args, dict) or "model" not in args:
        raise SuperionError(f"model '{name}' is a {meta.get('@class')}, not a matgl Potential; give an M3GNet PES model")
    m = args["model"]
    if isinstance(m, dict) and "@class" in m:
        import matgl.models

        cls = getattr(matgl.models, m["@class"], None)
        if cls is None:
            raise SuperionError(f"model '{name}' uses unknown architecture {m['@class']}; update matgl or pick another model")
        model = cls(**_accepted(cls, m["init_args"], name))
    else:
        model = m
    kwargs = {k: v for k, v in args.items() if k != "model" and not k.startswith("@")}
    pot = Potential(model=model, **_accepted(Potential, kwargs, name))
    own = pot.state_dict()
    state = {k: v for k, v in state.items() if not (k.endswith(".onehot") and k not in own)}
    try:
        pot.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise SuperionError(f"weights of model '{name}' do not match its architecture ({' '.join(first[1:2]).strip()[:200]}); "
                            "the checkpoint is incompatible with this matgl") from None
    pot.eval()
    return pot, meta


# Constructor arguments of old checkpoints that current matgl dropped and that do not affect
# energies, forces or stresses (M3GNet-r2SCAN-NaBH's Potential carries calc_site_wise=False).
_BENIGN_DROPPED = {"calc_site_wise"}


def _accepted(cls, kwargs: dict, name: str) -> dict:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    dropped = sorted(k for k in kwargs if k not in params)
    if set(dropped) - _BENIGN_DROPPED:  # an unknown architecture flag could change the physics: say so
        warnings.warn(f"model {name}: ignoring constructor argument(s) {dropped} that this matgl's "
                      f"{cls.__name__} does not accept; run 'superion potential check' on it", UserWarning, stacklevel=3)
    elif dropped:
        log.info("model %s: dropping constructor argument(s) %s unknown to %s", name, dropped, cls.__name__)
    return {k: v for k, v in kwargs.items() if k in params}


def _decide_legacy(sha: str, meta: dict, override: bool | None, name: str) -> tuple[bool, str | None, str]:
    """(legacy?, known name or None, reason). Order: override, sha256 table, model.json metadata."""
    known = registry.known_by_sha256(sha)
    if override is not None:
        return bool(override), known[0] if known else None, "explicit override"
    if known:
        return bool(known[1]["legacy"]), known[0], f"known checkpoint {known[0]} (sha256)"
    md = meta.get("metadata") or {}
    if isinstance(md, dict):
        agg = str(md.get("aggregation", "")).lower()
        if agg in ("dst", "destination", "legacy"):
            return True, None, "model.json metadata aggregation=dst"
        if agg in ("src", "source", "current"):
            return False, None, "model.json metadata aggregation=src"
        ver = md.get("matgl_version") or md.get("matgl")
        if ver:
            major = int(re.match(r"\d+", str(ver)).group()) if re.match(r"\d+", str(ver)) else None
            if major is not None:
                return major < 3, None, f"model.json metadata matgl_version={ver}"
    differs = (f" (its state.pt differs from the verified '{name}', sha256 {sha[:12]})"
               if name in registry.known_models_table()["models"] else "")
    warnings.warn(
        f"potential '{name}' is not a known checkpoint{differs}: assuming it was trained with current matgl "
        "(source aggregation) and skipping the fingerprint self-check; if it was trained with matgl <= 2.2, "
        "load it with legacy=True ('superion potential check --aggregation legacy' to compare)",
        UserWarning,
        stacklevel=3,
    )
    return False, None, "unknown checkpoint: current matgl assumed"


@dataclass
class LoadedPotential:
    """A loaded matgl Potential plus what superion knows about it."""

    potential: Any
    name: str
    path: Path | None
    legacy: bool
    element_types: tuple[str, ...]
    sha256: str
    device: str
    known_as: str | None = None
    where: str = "path"
    legacy_reason: str = ""
    exact_dgl: bool = False
    self_check_result: dict | None = field(default=None, repr=False)

    def record(self) -> dict:
        """What to store in run metadata: identity, aggregation mode, versions."""
        return {
            "name": self.name, "known_as": self.known_as, "path": str(self.path) if self.path else None,
            "sha256": self.sha256, "legacy_aggregation": self.legacy, "exact_dgl": self.exact_dgl,
            "legacy_reason": self.legacy_reason, "device": self.device, "versions": software_versions(PARITY_DISTRIBUTIONS, python=False),
            "self_check": self.self_check_result,
        }

    def check_elements(self, symbols: Iterable[str]) -> None:
        """SuperionError naming elements of ``symbols`` this potential was not trained on."""
        allowed = set(self.element_types)
        missing = sorted(set(symbols) - allowed)
        if missing:
            raise SuperionError(
                f"potential '{self.name}' has no parameters for element(s) {', '.join(missing)} "
                f"(it knows {', '.join(self.element_types) if len(allowed) < 12 else f'{len(allowed)} elements'}); "
                f"use a universal model such as {UNIVERSAL_MODEL}"
            )

    def calculator(self) -> "Calculator":
        """A fresh ASE calculator: energy eV, forces eV/A, stress eV/A^3 (ASE sign, Voigt)."""
        return _make_calculator(self.potential)

    def batch_evaluator(self, batched_graph: bool = True):
        """Evaluator of many structures, in one batched forward unless ``batched_graph`` is False
        (:class:`superion.potential.batch.BatchEvaluator`)."""
        from superion.potential.batch import BatchEvaluator

        return BatchEvaluator(self.potential, batched_graph=batched_graph)

    def evaluate(self, atoms: "Atoms") -> tuple[float, Any, Any]:
        """(energy eV, forces (N,3) eV/A, stress (6,) eV/A^3) of ``atoms`` (not modified)."""
        a = atoms.copy()
        a.calc = self.calculator()
        return float(a.get_potential_energy()), a.get_forces(), a.get_stress()


def _make_calculator(potential):
    from matgl.ext.ase import PESCalculator

    # matgl logs a GPa warning at INFO/WARNING level; we ask for eV/A^3, which ASE expects.
    return PESCalculator(potential, stress_unit="eV/A3", use_voigt=True)


def run_self_check(lp: LoadedPotential, entry: dict | None = None) -> dict:
    """Compare the model's energy/forces on its fingerprint structure with the stored values.

    Raises SuperionError on mismatch; returns {"dE_meV_atom", "dF_eV_A", "structure"}.
    """
    import numpy as np

    if entry is None:
        entry = registry.known_models_table()["models"][lp.known_as]
    fp = entry["fingerprint"]
    tol = entry["tolerance"]
    atoms = registry.fingerprint_atoms(fp["structure"])
    e, f, _ = lp.evaluate(atoms)
    de = 1000.0 * abs(e - fp["energy_eV"]) / len(atoms)
    df = float(np.abs(np.asarray(f) - np.asarray(fp["forces_eV_A"])).max())
    out = {"structure": fp["structure"], "dE_meV_atom": de, "dF_eV_A": df}
    if not (de <= tol["energy_meV_atom"] and df <= tol["forces_eV_A"]):
        raise SuperionError(
            f"self-check failed for potential '{lp.name}' ({'legacy' if lp.legacy else 'current'} aggregation) "
            f"on {fp['structure']}: expected E={fp['energy_eV']:.4f} eV, got {e:.4f} eV "
            f"(|dE|={de:.2f} meV/atom, max|dF|={df:.3f} eV/A; tolerance {tol['energy_meV_atom']} meV/atom, "
            f"{tol['forces_eV_A']} eV/A); check the legacy setting and the matgl/torch-geometric versions "
            f"(verified: {registry.verified_versions_str()}), or run 'superion potential check {lp.name}'"
        )
    return out


def load_potential(
    name_or_path: str | os.PathLike,
    *,
    device: str = "auto",
    legacy: bool | None = None,
    self_check: bool = True,
    models_dir: str | os.PathLike | None = None,
    exact_dgl: bool = False,
) -> LoadedPotential:
    """Load (or return the cached) potential ``name_or_path`` on ``device``.

    ``legacy=None`` decides destination vs source aggregation from the checkpoint (sha256
    table, then model.json metadata); True/False overrides. Known models are fingerprint-
    checked unless ``self_check=False``. Same name/device/legacy -> the same object.
    ``exact_dgl=True`` (legacy models only) reproduces matgl 2.2.1 to ~0.01 meV/atom, at the
    price of small energy jumps when bonds cross the three-body cutoff: parity work, not MD.
    """
    name, files, where = resolve_model(name_or_path, models_dir)  # first: bad names fail fast
    dev = select_device(device)
    state_path = Path(files["state.pt"]).resolve()
    key = (str(state_path), dev, legacy, bool(self_check), bool(exact_dgl))
    if key in _CACHE:
        return _CACHE[key]
    sha = file_sha256(state_path)
    pot, meta = _read_checkpoint(files, name)
    is_legacy, known_as, reason = _decide_legacy(sha, meta, legacy, name)
    if exact_dgl and not is_legacy:
        raise SuperionError(f"exact_dgl needs a legacy (matgl <= 2.2) checkpoint, but '{name}' is evaluated "
                            "with current aggregation; drop exact_dgl or set legacy=True")
    if set_legacy_aggregation(pot, is_legacy, exact_dgl=exact_dgl) == 0 and is_legacy:
        raise SuperionError(f"legacy aggregation requested for '{name}', but it has no M3GNet graph convolution; "
                            "use legacy only with M3GNet checkpoints")
    pot = pot.to(dev)
    lp = LoadedPotential(
        potential=pot,
        name=name,
        path=state_path.parent if where != "hub" else None,
        legacy=is_legacy,
        element_types=tuple(pot.model.element_types),
        sha256=sha,
        device=dev,
        known_as=known_as,
        where=where,
        legacy_reason=reason,
        exact_dgl=bool(exact_dgl),
    )
    if known_as and known_as != name and where != "path":
        log.warning("potential '%s' has the weights of known model '%s'", name, known_as)
    if self_check and known_as is not None:
        v = software_versions(PARITY_DISTRIBUTIONS, python=False)
        ver = registry.known_models_table()["verified_with"]
        if any(v.get(k) is not None and not v[k].startswith(ver[k]) for k in ("matgl", "torch-geometric")):
            log.warning("matgl/torch-geometric %s differ from the verified %s", v, ver)
        lp.self_check_result = run_self_check(lp)
    _CACHE[key] = lp
    return lp


def get_calculator(
    name_or_path: str | os.PathLike,
    *,
    device: str = "auto",
    threads: int | None = None,
    legacy: bool | None = None,
    symbols: Iterable[str] | None = None,
    models_dir: str | os.PathLike | None = None,
) -> "Calculator":
    """ASE calculator for a potential (stress eV/A^3, ASE sign); checks ``symbols`` first.

    ``models_dir`` is searched first for a model given by name (see ``default_models_dirs``)."""
    return load_checked(name_or_path, device=device, threads=threads, legacy=legacy, symbols=symbols or (),
                        models_dir=models_dir).calculator()


def load_checked(
    potential,
    *,
    device: str = "auto",
    threads: int | None = None,
    legacy: bool | None = None,
    symbols: Iterable[str] = (),
    models_dir: str | os.PathLike | None = None,
) -> LoadedPotential:
    """``potential`` (a name, a folder, or an already loaded :class:`LoadedPotential`) loaded on
    ``device`` with ``threads`` torch threads (None: torch's choice) and checked to have
    parameters for every element in ``symbols``: what every command that takes --potential does."""
    if threads is not None and threads < 1:
        raise SuperionError(f"--threads must be >= 1, got {threads}")
    set_threads(threads)
    lp = potential if isinstance(potential, LoadedPotential) else load_potential(
        potential, device=device, legacy=legacy, models_dir=models_dir)
    lp.check_elements(symbols)
    return lp


def clear_cache() -> None:
    """Forget loaded potentials (tests)."""
    _CACHE.clear()
