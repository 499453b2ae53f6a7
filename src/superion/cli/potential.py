"""``superion potential``: check a potential against the parity reference, list known models."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from superion.errors import SuperionError

_AGG = {"auto": None, "legacy": True, "current": False}


def register(subparsers) -> None:
    p = subparsers.add_parser("potential", help="check and list M3GNet potentials")
    sub = p.add_subparsers(dest="potential_command", metavar="SUBCOMMAND")

    c = sub.add_parser(
        "check",
        help="evaluate the parity reference structures; exit 1 beyond tolerance",
        description="Compare energies, forces and stresses with the matgl 2.2.1 (DGL) reference in "
        "../shared/parity. Exit status 0 = within tolerance, 1 = beyond, 2 = bad input.",
    )
    c.add_argument("model", metavar="NAME_OR_PATH", help="model name (searched in $SUPERION_MODELS) or folder")
    c.add_argument("--reference", metavar="DIR", help="parity folder with reference.json and structures.extxyz "
                   "(default: $SUPERION_SHARED/parity, ../shared/parity, $SUPERION_MODELS/../parity)")
    c.add_argument("--device", default="auto", help="auto|cpu|cuda (default auto)")
    c.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    c.add_argument("--aggregation", choices=sorted(_AGG), default="auto",
                   help="auto (from the checkpoint), legacy (destination, matgl<=2.2) or current (source)")
    c.add_argument("--exact-dgl", action="store_true",
                   help="legacy models: also reproduce matgl<=2.2's pruned-list three-body indexing "
                   "(bit-for-bit parity; energy jumps at the 4 A three-body cutoff, so not for MD)")
    c.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    c.set_defaults(func=cmd_check)

    ls = sub.add_parser("list", help="known models: where found, legacy or current, sha256")
    ls.add_argument("--models-dir", metavar="DIR", help="extra folder to search first")
    ls.set_defaults(func=cmd_list)

    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


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


def compare(lp, model_ref: dict, frames: dict) -> list[dict]:
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


def tolerance_for(lp) -> dict:
    from superion.potential import known_models_table

    entry = known_models_table()["models"].get(lp.known_as or "")
    return entry["tolerance"] if entry else {"energy_meV_atom": 0.5, "forces_eV_A": 0.01}


def cmd_check(args: argparse.Namespace) -> int:
    from superion.potential import load_potential, resolve_model, set_threads

    resolve_model(args.model)  # a bad name fails before the heavy imports
    results, frames, ref_dir = load_reference(args.reference)
    set_threads(args.threads)
    lp = load_potential(args.model, device=args.device, legacy=_AGG[args.aggregation], self_check=False,
                        exact_dgl=args.exact_dgl)
    key = lp.known_as if lp.known_as in results else lp.name
    if key not in results:
        raise SuperionError(f"no reference values for '{lp.name}' in {ref_dir}/reference.json "
                            f"(has: {', '.join(results)}); check a model listed there")
    tol = tolerance_for(lp)
    rows = compare(lp, results[key], frames)
    ok = True
    mode = ("legacy destination" + (" + DGL three-body indexing" if lp.exact_dgl else "")) if lp.legacy else "current source"
    print(f"potential {lp.name} ({mode} aggregation: "
          f"{lp.legacy_reason}; sha256 {lp.sha256[:12]}; device {lp.device})")
    print(f"reference {ref_dir} ({key}); tolerance {tol['energy_meV_atom']} meV/atom, {tol['forces_eV_A']} eV/A")
    print(f"{'structure':<12}{'atoms':>6}{'dE meV/atom':>13}{'max|dF| eV/A':>14}{'max|dS| GPa':>13}  status")
    for r in rows:
        good = abs(r["dE_meV_atom"]) <= tol["energy_meV_atom"] and r["dF_eV_A"] <= tol["forces_eV_A"]
        r["ok"] = good
        ok &= good
        print(f"{r['structure']:<12}{r['n_atoms']:>6}{r['dE_meV_atom']:>13.3f}{r['dF_eV_A']:>14.4f}"
              f"{r['dS_GPa']:>13.4f}  {'ok' if good else 'FAIL'}")
    print("PASS" if ok else "FAIL: beyond tolerance")
    if args.json:
        from superion.atomic import write_json

        write_json(args.json, {"potential": lp.name, "known_as": lp.known_as, "legacy": lp.legacy,
                               "sha256": lp.sha256, "tolerance": tol, "rows": rows, "pass": ok})
    return 0 if ok else 1


def cmd_list(args: argparse.Namespace) -> int:
    from superion.atomic import file_sha256
    from superion.potential import MODEL_FILES, default_models_dirs, known_models_table

    table = known_models_table()["models"]
    dirs = default_models_dirs(args.models_dir)
    seen: set[Path] = set()
    print(f"{'model':<36}{'aggregation':<13}{'sha256':<14}found")
    for name, entry in table.items():
        where, sha = "not found locally (hub: materialyze/%s)" % name, entry["state_sha256"][:12]
        for d in dirs:
            if all((d / name / f).is_file() for f in MODEL_FILES):
                got = file_sha256(d / name / "state.pt")
                where = str(d / name) + ("" if got == entry["state_sha256"] else f" (DIFFERENT weights {got[:12]})")
                seen.add((d / name).resolve())
                break
        print(f"{name:<36}{'legacy' if entry['legacy'] else 'current':<13}{sha:<14}{where}")
    for d in dirs:  # model folders present but not in the table
        if not d.is_dir():
            continue
        for sub in sorted(d.iterdir()):
            if sub.resolve() in seen or not all((sub / f).is_file() for f in MODEL_FILES):
                continue
            seen.add(sub.resolve())
            print(f"{sub.name:<36}{'unknown':<13}{file_sha256(sub / 'state.pt')[:12]:<14}{sub} (not verified)")
    print("searched: " + ", ".join(str(d) for d in dirs))
    return 0
