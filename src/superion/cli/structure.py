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
from collections import Counter

from superion.errors import SuperionError


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


def _load_potential(name: str, device: str, threads: int | None, symbols, models_dir=None) -> object:
    from superion.potential import load_potential, set_threads

    if threads is not None and threads < 1:
        raise SuperionError(f"--threads must be >= 1, got {threads}")
    set_threads(threads)
    lp = load_potential(name, device=device, models_dir=models_dir)
    lp.check_elements(symbols)
    return lp


def cmd_prepare(args: argparse.Namespace) -> int:
    import warnings

    from superion import __version__
    from superion.structures.clusters import KNOWN_CLUSTERS, label_clusters
    from superion.structures.ordering import order_structure, parse_oxidation_states
    from superion.atomic import file_sha256
    from superion.structures.io import check_output_path, json_path_for, read_pymatgen, to_atoms, write_with_report
    from superion.structures.supercell import check_min_width, explicit_supercell, find_supercell, make_supercell

    # cheap checks first: nothing is loaded or written for bad settings
    out = check_output_path(args.out, allowed=(".extxyz", ".xyz"))
    if args.supercell is None:
        check_min_width(args.min_width_A)
    if args.n_candidates < 1:
        raise SuperionError(f"--n-candidates must be >= 1, got {args.n_candidates}")
    if args.n_samples < 1:
        raise SuperionError(f"--n-samples must be >= 1, got {args.n_samples}")
    if args.rerank < 0:
        raise SuperionError(f"--rerank must be >= 0, got {args.rerank}")
    if args.rerank and not args.potential:
        raise SuperionError("--rerank needs --potential NAME (the model that re-ranks the candidates)")
    oxi = parse_oxidation_states(args.oxidation_states)

    structure = read_pymatgen(args.input)
    symbols = sorted({el.symbol for el in structure.composition.elements})
    lp = _load_potential(args.potential, args.device, args.threads, symbols, args.models_dir) if args.potential else None

    n_cell_sites = len(structure)
    if args.supercell is not None:
        choice = explicit_supercell(structure.lattice.matrix, args.supercell)
    else:
        choice = find_supercell(structure.lattice.matrix, args.min_width_A)

    # clusters can only be made of fully occupied sites (ordering refuses anything else), so
    # the expected count is the cell's count times the number of cells
    ordered_part = structure.copy()
    ordered_part.remove_sites([i for i, s in enumerate(structure) if not s.is_ordered])
    expected = Counter()
    if len(ordered_part):
        expected = Counter(label_clusters(to_atoms(ordered_part)).types)
    expected = {t: n * choice.n_cells for t, n in expected.items()}

    to_order = structure
    if args.order_in_supercell and not structure.is_ordered:
        to_order = structure.copy()
        to_order.make_supercell(list(choice.multiplier))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = order_structure(
            to_order, seed=args.seed, n_candidates=args.n_candidates, n_samples=args.n_samples,
            oxidation_states=oxi, calculator=lp.calculator() if (lp and args.rerank) else None, rerank=args.rerank,
        )
    for w in caught:
        if issubclass(w.category, UserWarning) and str(w.message) in result.record.get("warnings", []):
            _warn(w.message)

    atoms = to_atoms(result.structure)
    if to_order is structure:
        atoms = make_supercell(atoms, choice.multiplier)
    labels = label_clusters(atoms)
    labels.attach(atoms)
    got = labels.counts()
    if got != expected:
        raise SuperionError(
            f"cluster counts changed while preparing: expected {expected} (cell x {choice.n_cells}), found {got}; "
            "the ordering or supercell broke or fused molecular ions — check the input structure"
        )
    known = set(KNOWN_CLUSTERS.values())
    unknown = sorted({t for t in got if t not in known})
    if unknown:
        _warn(f"clusters of unknown type {', '.join(unknown)} (broken or fused molecular ions?); check the structure")

    counts = Counter(atoms.get_chemical_symbols())
    sc = choice.to_dict()
    sc["n_atoms_cell"] = len(result.structure) if to_order is structure else len(atoms) // choice.n_cells
    sc["n_atoms"] = len(atoms)
    report = {
        "superion_version": __version__,
        "command": "prepare",
        "input": {"path": str(args.input), "sha256": file_sha256(args.input), "n_sites": n_cell_sites,
                  "formula": structure.composition.formula.replace(" ", ""), "ordered": structure.is_ordered},
        "output": str(out),
        "formula": "".join(f"{el}{counts[el]}" for el in sorted(counts)),
        "reduced_formula": result.structure.composition.reduced_formula,
        "n_atoms": len(atoms),
        "species_counts": dict(sorted(counts.items())),
        "multiplier": list(choice.multiplier),
        "supercell": sc,
        "perpendicular_widths_A": sc["perpendicular_widths_supercell_A"],
        "lattice_A": atoms.cell[:].round(8).tolist(),
        "volume_A3": float(atoms.get_volume()),
        "cluster_counts": got,
        "ordering": dict(result.record, ordered_in="supercell" if to_order is not structure else "cell"),
        "potential": lp.record() if lp else None,
        "seed": args.seed,
        "warnings": list(result.record.get("warnings", [])) + [f"unknown cluster type {t}" for t in unknown],
    }
    write_with_report(atoms, out, report)
    print(f"wrote {out} ({len(atoms)} atoms, supercell {'x'.join(map(str, choice.multiplier))}) and {json_path_for(out)}")
    return 0


def cmd_relax(args: argparse.Namespace) -> int:
    from superion import __version__
    from superion.structures.clusters import label_clusters, labels_for
    from superion.structures.relax import check_relax_settings, relax_structure
    from superion.atomic import file_sha256
    from superion.structures.io import check_output_path, json_path_for, read_atoms, write_with_report

    out = check_output_path(args.out, allowed=(".cif", ".extxyz", ".xyz", ".vasp"))
    check_relax_settings(args.fmax, args.max_steps, args.optimizer)
    atoms = read_atoms(args.input)
    lp = _load_potential(args.potential, args.device, args.threads, set(atoms.get_chemical_symbols()), args.models_dir)

    before = labels_for(atoms)
    res = relax_structure(
        atoms, lp.calculator(), fmax=args.fmax, max_steps=args.max_steps, relax_cell=not args.fixed_cell,
        stress_tol_GPa=args.stress_tol_GPa,
        optimizer=args.optimizer, trajectory=args.trajectory,
    )
    after = label_clusters(res.atoms)
    intact = after.counts() == before.counts() and bool((after.cluster_id >= 0).sum() == (before.cluster_id >= 0).sum())
    if out.suffix.lower() in (".extxyz", ".xyz"):
        (before if intact else after).attach(res.atoms)
    report = {
        "superion_version": __version__,
        "command": "relax",
        "input": {"path": str(args.input), "sha256": file_sha256(args.input)},
        "output": str(out),
        "potential": lp.record(),
        "settings": {"fmax_eV_A": args.fmax, "stress_tol_GPa": args.stress_tol_GPa, "max_steps": args.max_steps, "optimizer": res.optimizer,
                     "relax_cell": not args.fixed_cell, "filter": None if args.fixed_cell else "FrechetCellFilter"},
        "formula": res.atoms.get_chemical_formula(mode="hill"),
        **res.to_dict(),
        "clusters_before": before.counts(),
        "clusters_after": after.counts(),
        "clusters_intact": intact,
    }
    write_with_report(res.atoms, out, report)
    print(
        f"wrote {out} and {json_path_for(out)}: E = {res.energy_per_atom_eV:.5f} eV/atom, "
        f"dV = {res.volume_change_percent:+.2f} %, {res.steps} steps, converged={res.converged}"
    )
    if not intact:
        _warn(f"clusters changed during relaxation ({before.counts()} -> {after.counts()}); the potential or "
              "starting structure may be bad")
    if not res.converged:
        _warn(f"relaxation NOT converged after {res.steps} steps (fmax {res.fmax_final_eV_A:.3f} > {args.fmax} eV/Å); "
              "raise --max-steps or start from a better structure")
        return 1 if args.require_converged else 0
    return 0


def cmd_supercell(args: argparse.Namespace) -> int:
    from superion.structures.io import read_pymatgen
    from superion.structures.supercell import check_min_width, find_supercell

    check_min_width(args.min_width_A)
    structure = read_pymatgen(args.input)
    choice = find_supercell(structure.lattice.matrix, args.min_width_A, n_atoms_cell=len(structure))
    d = choice.to_dict()
    if not structure.is_ordered:
        d["note"] = "input has partial occupancies: atom counts are sites, not atoms"
        d["n_atoms_cell"] = None
        d["n_atoms"] = None
        d["n_atoms_ordered"] = round(sum(structure.composition.values()) * choice.n_cells, 3)
    print(json.dumps(d, indent=2))
    return 0
