"""``superion potential``: check a potential against the parity reference, list known models."""

from __future__ import annotations

import argparse

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
    c.add_argument("--models-dir", metavar="DIR", help="folder of models by name, searched before $SUPERION_MODELS")
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


def cmd_check(args: argparse.Namespace) -> int:
    from superion.potential.parity import check_parity

    rep = check_parity(args.model, reference=args.reference, device=args.device, threads=args.threads,
                       legacy=_AGG[args.aggregation], exact_dgl=args.exact_dgl, models_dir=args.models_dir)
    lp, tol = rep.potential, rep.tolerance
    mode = ("legacy destination" + (" + DGL three-body indexing" if lp.exact_dgl else "")) if lp.legacy else "current source"
    print(f"potential {lp.name} ({mode} aggregation: "
          f"{lp.legacy_reason}; sha256 {lp.sha256[:12]}; device {lp.device})")
    print(f"reference {rep.reference_dir} ({rep.key}); tolerance {tol['energy_meV_atom']} meV/atom, {tol['forces_eV_A']} eV/A")
    print(f"{'structure':<12}{'atoms':>6}{'dE meV/atom':>13}{'max|dF| eV/A':>14}{'max|dS| GPa':>13}  status")
    for r in rep.rows:
        print(f"{r['structure']:<12}{r['n_atoms']:>6}{r['dE_meV_atom']:>13.3f}{r['dF_eV_A']:>14.4f}"
              f"{r['dS_GPa']:>13.4f}  {'ok' if r['ok'] else 'FAIL'}")
    print("PASS" if rep.ok else "FAIL: beyond tolerance")
    if args.json:
        from superion.atomic import write_json

        write_json(args.json, rep.to_dict())
    return 0 if rep.ok else 1


def cmd_list(args: argparse.Namespace) -> int:
    from superion.potential.registry import HF_ORG, list_models

    models, dirs = list_models(args.models_dir)
    print(f"{'model':<36}{'aggregation':<13}{'sha256':<14}found")
    for m in models:
        if m.folder is None:
            where = f"not found locally (hub: {HF_ORG}/{m.name})"
        elif not m.known:
            where = f"{m.folder} (not verified)"
        else:
            where = str(m.folder) + (f" (DIFFERENT weights {m.found_sha256[:12]})" if m.weights_differ else "")
        print(f"{m.name:<36}{m.aggregation:<13}{m.sha256[:12]:<14}{where}")
    print("searched: " + ", ".join(str(d) for d in dirs))
    return 0
