"""``superion prepare``, ``superion relax``, ``superion supercell``: structure tooling.

prepare: CIF → ordered (if partially occupied) → supercell → cluster labels → extxyz + JSON.
relax:   positions + cell with FrechetCellFilter; relaxed structure + JSON beside it.
         Not converged within --max-steps: the outputs are written with ``converged: false``,
         a one-line warning goes to stderr and the exit status is 0 — or 1 with
         ``--require-converged`` (then a workflow marks the step failed).
supercell: print the smallest diagonal supercell reaching --min-width-A.
"""

from __future__ import annotations

import argparse
import json
import sys


def _warn(msg: str) -> None:
    print(f"superion: warning: {' '.join(str(msg).split())}", file=sys.stderr)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="CIF -> ordered model -> supercell -> cluster labels (extxyz + JSON report)",
        description="Order partial occupancies (Ewald ranking, optional M3GNet re-rank), build the smallest "
        "supercell with all perpendicular widths >= --min-width-A, label molecular-ion clusters, and write "
        "OUT.extxyz plus OUT.json beside it.",
    )
    p.add_argument("input", metavar="IN", help="structure file (CIF with partial occupancies, POSCAR, extxyz)")
    p.add_argument("--out", required=True, metavar="OUT.extxyz", help="prepared structure (.extxyz)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--min-width-A", type=float, default=10.0, metavar="W",
                      help="smallest perpendicular width of the supercell in Å (default 10, the study's rule)")
    size.add_argument("--supercell", type=int, nargs=3, metavar=("N1", "N2", "N3"),
                      help="explicit diagonal multiplier instead of --min-width-A (e.g. 2 2 2 as in the paper)")
    p.add_argument("--seed", type=int, default=0, help="seed of the ordering search (default 0)")
    p.add_argument("--n-candidates", type=int, default=20, help="ordered candidates kept, by Ewald energy (default 20)")
    p.add_argument("--n-samples", type=int, default=48,
                   help="annealing runs when the configurations are too many to enumerate (default 48)")
    p.add_argument("--order-in-supercell", action="store_true",
                   help="order the supercell instead of the cell (closer occupancies, more disorder; slower)")
    p.add_argument("--oxidation-states", metavar="EL=Q,...", help="override oxidation states, e.g. Li=1,S=-2")
    p.add_argument("--potential", metavar="NAME", help="M3GNet model used to re-rank the best candidates")
    p.add_argument("--models-dir", metavar="DIR", help="folder of models by name, searched before $SUPERION_MODELS")
    p.add_argument("--rerank", type=int, default=0, metavar="N",
                   help="re-rank the N best Ewald candidates by M3GNet energy after a short relaxation (needs --potential)")
    p.add_argument("--mobile-species", metavar="EL", default=None,
                   help="the mobile ion (e.g. Na): refuse a structure that does not contain it")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda (default auto)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.set_defaults(func=cmd_prepare)

    r = subparsers.add_parser(
        "relax",
        help="relax positions and cell with an M3GNet potential (structure + JSON report)",
        description="FrechetCellFilter + FIRE/BFGS/LBFGS. Writes OUT (.cif or .extxyz) and OUT.json. "
        "Non-convergence: outputs written with converged=false, warning on stderr, exit 0 "
        "(exit 1 with --require-converged).",
    )
    r.add_argument("input", metavar="IN", help="ordered structure (CIF, POSCAR, extxyz)")
    r.add_argument("--potential", required=True, metavar="NAME", help="model name or folder")
    r.add_argument("--models-dir", metavar="DIR", help="folder of models by name, searched before $SUPERION_MODELS")
    r.add_argument("--out", required=True, metavar="OUT.cif", help="relaxed structure (.cif, .extxyz, .vasp)")
    r.add_argument("--fmax", type=float, default=0.05, help="force convergence in eV/Å (default 0.05)")
    r.add_argument("--max-steps", type=int, default=500, help="optimizer steps at most (default 500)")
    r.add_argument("--stress-tol-GPa", type=float, default=0.1,
                   help="cell convergence: largest stress component in GPa (default 0.1)")
    r.add_argument("--optimizer", default="FIRE", help="FIRE (default), BFGS or LBFGS")
    r.add_argument("--fixed-cell", action="store_true", help="relax positions only")
    r.add_argument("--device", default="auto", help="auto|cpu|cuda (default auto)")
    r.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    r.add_argument("--trajectory", metavar="FILE.traj", help="also write the optimization trajectory")
    r.add_argument("--require-converged", action="store_true", help="exit 1 if not converged")
    r.set_defaults(func=cmd_relax)

    s = subparsers.add_parser("supercell", help="smallest diagonal supercell with perpendicular widths >= W")
    s.add_argument("input", metavar="IN", help="structure file")
    s.add_argument("--min-width-A", type=float, default=10.0, metavar="W", help="target width in Å (default 10)")
    s.set_defaults(func=cmd_supercell)


def cmd_prepare(args: argparse.Namespace) -> int:
    from superion.structures.io import json_path_for
    from superion.structures.prepare import prepare_file

    prepared = prepare_file(
        args.input, args.out, supercell=args.supercell, min_width_A=args.min_width_A, seed=args.seed,
        n_candidates=args.n_candidates, n_samples=args.n_samples, order_in_supercell=args.order_in_supercell,
        oxidation_states=args.oxidation_states, potential=args.potential, rerank=args.rerank, device=args.device,
        threads=args.threads, models_dir=args.models_dir, mobile_species=args.mobile_species, warn=_warn,
    )
    rep = prepared.report
    print(f"wrote {rep['output']} ({rep['n_atoms']} atoms, supercell {'x'.join(map(str, rep['multiplier']))}) "
          f"and {json_path_for(rep['output'])}")
    return 0


def cmd_relax(args: argparse.Namespace) -> int:
    from superion.structures.io import json_path_for
    from superion.structures.relax import relax_file

    relaxed = relax_file(
        args.input, args.out, potential=args.potential, device=args.device, threads=args.threads, fmax=args.fmax,
        max_steps=args.max_steps, optimizer=args.optimizer, stress_tol_GPa=args.stress_tol_GPa,
        relax_cell=not args.fixed_cell, trajectory=args.trajectory, models_dir=args.models_dir,
    )
    res, out = relaxed.result, relaxed.report["output"]
    print(
        f"wrote {out} and {json_path_for(out)}: E = {res.energy_per_atom_eV:.5f} eV/atom, "
        f"dV = {res.volume_change_percent:+.2f} %, {res.steps} steps, converged={res.converged}"
    )
    for msg in relaxed.warnings():
        _warn(msg)
    return 1 if (args.require_converged and not res.converged) else 0


def cmd_supercell(args: argparse.Namespace) -> int:
    from superion.structures.io import read_pymatgen
    from superion.structures.supercell import check_min_width, supercell_summary

    check_min_width(args.min_width_A)
    print(json.dumps(supercell_summary(read_pymatgen(args.input), args.min_width_A), indent=2))
    return 0
