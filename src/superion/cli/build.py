"""``superion build`` (screen a structure recipe) and ``superion check-geometry`` (sanity checks)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "build",
        help="build an ordered starting structure from a recipe (templates, voids, Ewald, M3GNet screening)",
        description="Place rigid cluster templates, fill cation sites, rank candidates cheaply, relax the best "
        "with the recipe's potential; write the chosen model as CIF (provenance header) and a JSON record.",
    )
    p.add_argument("recipe", help="YAML recipe (see structures/recipes/)")
    p.add_argument("--out", required=True, help="output CIF path")
    p.add_argument("--record", default=None, help="JSON record path (default: OUT with .json)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--models-dir", metavar="DIR", help="folder of models by name, searched before $SUPERION_MODELS")
    p.add_argument("--single-points", type=int, default=None, help="override screen.single_points")
    p.add_argument("--dry-run", action="store_true", help="only build and cheap-rank candidates; print the top 10")
    p.set_defaults(func=_cmd_build)

    g = subparsers.add_parser(
        "check-geometry",
        help="check a structure: cluster integrity, bond ranges, H–H and cation contacts, counts, charge balance",
    )
    g.add_argument("file", help="ordered periodic structure (CIF, extxyz, POSCAR)")
    g.add_argument("--expect", default=None, help="expected cluster counts, e.g. B12H12=4,BH4=4")
    g.add_argument("--json", action="store_true", help="print the full report as JSON")
    g.set_defaults(func=_cmd_check)


def _parse_expect(text: str | None) -> dict[str, int] | None:
    from superion.errors import SuperionError

    if not text:
        return None
    out = {}
    for part in text.split(","):
        name, _, num = part.partition("=")
        if not num.strip().isdigit():
            raise SuperionError(f"--expect entry {part!r} must look like NAME=COUNT, e.g. B12H12=4")
        out[name.strip()] = int(num)
    return out


def _cmd_check(args: argparse.Namespace) -> int:
    import json

    from superion.structures.geometry import check_structure_file

    atoms, rep = check_structure_file(args.file, _parse_expect(args.expect))
    if args.json:
        print(json.dumps(rep.to_dict(), indent=2))
    else:
        print(f"{args.file}: {len(atoms)} atoms, {rep.summary()}")
        for p in rep.problems:
            print(f"  - {p}")
    return 0 if rep.ok else 1


def _cmd_build(args: argparse.Namespace) -> int:
    import sys

    from superion.structures.build import build_candidates, load_recipe, run_recipe

    if args.dry_run:
        recipe = load_recipe(args.recipe)
        cands = build_candidates(recipe)
        print(f"{recipe['name']}: {len(cands)} candidates; top 10 by cheap score (Ewald eV + overlap Å²):")
        for c in cands[:10]:
            print(f"  {c['id']:40s} {c['cation_origin']:8s} ewald {c['ewald_eV']:10.3f}  overlap {c['overlap_A2']:.3f}")
        return 0
    limit = {"single_points": args.single_points} if args.single_points else None
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    rec = run_recipe(args.recipe, args.out, device=args.device, threads=args.threads, record_path=args.record,
                     limit=limit, log=log, models_dir=args.models_dir)
    print(f"{args.out}: {rec['chosen']} E = {rec['chosen_energy_eV_atom']:.5f} eV/atom, {rec['chosen_space_group']}, "
          f"lattice {rec['chosen_lattice'].get('deviation_pct', '')}")
    return 0
