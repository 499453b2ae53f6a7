"""Parity of a potential with the matgl 2.2.1 (DGL) reference in ../shared/parity.

A parity folder holds ``reference.json`` (energies eV, forces eV/A, stresses eV/A^3 by model
and structure) and ``structures.extxyz`` (the frames, ``info["name"]``). :func:`check_parity`
loads a model and compares it on every reference structure of that model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from superion.errors import SuperionError
from superion.potential import registry
from superion.potential.loading import LoadedPotential

# Tolerance of models not in the known table: the universal models' (issue 7).
DEFAULT_TOLERANCE = {"energy_meV_atom": 0.5, "forces_eV_A": 0.01}


def default_reference_dir() -> Path | None:
    """First parity folder found: $SUPERION_SHARED/parity, <repo>/../shared/parity, $SUPERION_MODELS/../parity."""
    cands = []
    if os.environ.get("SUPERION_SHARED"):
        cands.append(Path(os.environ["SUPERION_SHARED"]) / "parity")
    cands.append(Path(__file__).resolve().parents[3].parent / "shared" / "parity")
    if os.environ.get("SUPERION_MODELS"):
        cands.append(Path(os.environ["SUPERION_MODELS"]).parent / "parity")
    for c in cands:
        if (c / "reference.json").is_file():
            return c
    return None


def load_reference(ref_dir: str | os.PathLike | None) -> tuple[dict, dict, Path]:
    """(results by model, ASE frames by name, folder) of a parity reference folder."""
    from ase.io import read

    d = Path(ref_dir) if ref_dir else default_reference_dir()
    if d is None:
        raise SuperionError("no parity reference folder found; pass --reference DIR (holding reference.json "
                            "and structures.extxyz) or set SUPERION_SHARED")
    rj, sx = d / "reference.json", d / "structures.extxyz"
    if not rj.is_file() or not sx.is_file():
        raise SuperionError(f"'{d}' lacks reference.json or structures.extxyz; pass the parity folder with --reference")
    try:
        results = json.loads(rj.read_text())["results"]
        frames = {a.info["name"]: a for a in read(sx, ":")}
    except Exception as exc:
        raise SuperionError(f"cannot read parity reference in '{d}' ({type(exc).__name__}: {exc})") from None
    return results, frames, d


def compare(lp: LoadedPotential, model_ref: dict, frames: dict) -> list[dict]:
    """Rows {structure, n_atoms, dE_meV_atom, dF_eV_A, dS_GPa} of ``lp`` against the reference."""
    import numpy as np
    from ase.units import GPa

    rows = []
    for sname, r in model_ref.items():
        if sname not in frames:
            raise SuperionError(f"reference lists structure '{sname}' missing from structures.extxyz; "
                                "the parity folder is inconsistent")
        atoms = frames[sname]
        e, f, s = lp.evaluate(atoms)
        rows.append({
            "structure": sname,
            "n_atoms": len(atoms),
            "dE_meV_atom": 1000.0 * (e - r["energy_eV"]) / len(atoms),
            "dF_eV_A": float(np.abs(f - np.asarray(r["forces_eV_A"])).max()),
            "dS_GPa": float(np.abs(s - np.asarray(r["stress_eV_A3"])).max() / GPa),
        })
    return rows


def tolerance_for(lp: LoadedPotential) -> dict:
    """{energy_meV_atom, forces_eV_A}: the known model's tolerance, else :data:`DEFAULT_TOLERANCE`."""
    entry = registry.known_models_table()["models"].get(lp.known_as or "")
    return entry["tolerance"] if entry else dict(DEFAULT_TOLERANCE)


@dataclass
class ParityReport:
    """Result of :func:`check_parity`: one row per reference structure, each with ``ok``."""

    potential: LoadedPotential
    reference_dir: Path
    key: str  # the model name the reference values are stored under
    tolerance: dict
    rows: list[dict]

    @property
    def ok(self) -> bool:
        """True if every row is within tolerance (energy and forces; stress is reported only)."""
        return all(r["ok"] for r in self.rows)

    def to_dict(self) -> dict:
        lp = self.potential
        return {"potential": lp.name, "known_as": lp.known_as, "legacy": lp.legacy, "sha256": lp.sha256,
                "tolerance": self.tolerance, "rows": self.rows, "pass": self.ok}


def check_parity(
    model: str | os.PathLike,
    *,
    reference: str | os.PathLike | None = None,
    device: str = "auto",
    threads: int | None = None,
    legacy: bool | None = None,
    exact_dgl: bool = False,
    models_dir: str | os.PathLike | None = None,
) -> ParityReport:
    """Load ``model`` (no self-check) and compare it with its values in the parity folder.

    ``reference`` defaults to :func:`default_reference_dir`. SuperionError for a bad name, a
    bad folder or a model without reference values.
    """
    from superion.potential.device import set_threads
    from superion.potential.loading import load_potential

    registry.resolve_model(model, models_dir)  # a bad name fails before the heavy imports
    results, frames, ref_dir = load_reference(reference)
    set_threads(threads)
    lp = load_potential(model, device=device, legacy=legacy, self_check=False, exact_dgl=exact_dgl,
                        models_dir=models_dir)
    key = lp.known_as if lp.known_as in results else lp.name
    if key not in results:
        raise SuperionError(f"no reference values for '{lp.name}' in {ref_dir}/reference.json "
                            f"(has: {', '.join(results)}); check a model listed there")
    tol = tolerance_for(lp)
    rows = compare(lp, results[key], frames)
    for r in rows:
        r["ok"] = abs(r["dE_meV_atom"]) <= tol["energy_meV_atom"] and r["dF_eV_A"] <= tol["forces_eV_A"]
    return ParityReport(potential=lp, reference_dir=ref_dir, key=key, tolerance=tol, rows=rows)
