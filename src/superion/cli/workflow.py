"""Workflow commands: ``superion config validate|show``, ``superion tables``, ``superion figures``.

These are what the Snakefile's last rules call; they also work by hand on a results folder:

    superion config validate configs/default.yaml
    superion config show configs/default.yaml            # resolved settings, runs, cost estimate
    superion tables --config configs/default.yaml        # results/default/{summary,diffusion}.csv
    superion figures all --config configs/default.yaml   # results/default/figures/*.{pdf,svg,png}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from superion.errors import SuperionError
from superion.layout import FIGURE_KINDS

FIGURE_CHOICES = (*FIGURE_KINDS, "all")


def register(subparsers) -> None:
    p = subparsers.add_parser("config", help="validate or show a workflow config (configs/*.yaml)",
                              description="Validate a workflow config against the schema and the semantic checks.")
    sub = p.add_subparsers(dest="config_command", metavar="ACTION")
    v = sub.add_parser("validate", help="check one or more configs; one line per problem")
    v.add_argument("configs", nargs="+", metavar="CONFIG", help="YAML or JSON config file(s)")
    v.add_argument("--no-files", action="store_true", help="do not check that structure files exist")
    v.set_defaults(func=cmd_config_validate)
    s = sub.add_parser("show", help="print the resolved config (defaults filled), its runs and MD cost")
    s.add_argument("config", metavar="CONFIG")
    s.add_argument("--json", action="store_true", help="print the resolved config as JSON only")
    s.set_defaults(func=cmd_config_show)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    t = subparsers.add_parser("tables", help="write summary.csv and diffusion.csv of a sweep from its result JSON",
                              description="Collect per-run diffusion/rotation JSON and per-group Arrhenius JSON "
                                          "into summary.csv (system x mass setting) and diffusion.csv (one row per run).")
    t.add_argument("--config", required=True, help="the sweep's config (configs/X.yaml or results/X/config.json)")
    t.add_argument("--results", help="results folder of the sweep (default: <results_dir>/<name>)")
    t.add_argument("--summary", help="output summary CSV (default: RESULTS/summary.csv)")
    t.add_argument("--diffusion", help="output per-run CSV (default: RESULTS/diffusion.csv)")
    t.set_defaults(func=cmd_tables)

    f = subparsers.add_parser("figures", help="draw a sweep's figures (PDF, SVG, PNG) from its tables",
                              description="Draw figures from summary.csv/diffusion.csv and the per-run MSD/density "
                                          "files (no MD is read).")
    f.add_argument("kind", choices=FIGURE_CHOICES, help="which figure ('all' for every one)")
    f.add_argument("--config", required=True, help="the sweep's config (configs/X.yaml or results/X/config.json)")
    f.add_argument("--results", help="results folder of the sweep (default: <results_dir>/<name>)")
    f.add_argument("--out", help="output path without extension (one figure only; default RESULTS/figures/KIND)")
    f.set_defaults(func=cmd_figures)


def _load(path: str, check_files: bool = False) -> dict:
    from superion.workflow.config import load_config

    return load_config(path, check_files=check_files)


def cmd_config_validate(args: argparse.Namespace) -> int:
    from superion.workflow.config import estimate_cost, load_config, runs

    bad = 0
    for path in args.configs:
        try:
            cfg = load_config(path, check_files=not args.no_files)
        except SuperionError as exc:
            print(f"superion: error: {exc}", file=sys.stderr)
            bad += 1
            continue
        cost = estimate_cost(cfg)
        steps = f"{cost['atom_steps']:.3g} atom-steps" + ("" if cost["complete"] else " (some systems unknown)")
        print(f"{path}: ok ({len(cfg['systems'])} systems, {len(runs(cfg))} MD runs, ~{steps})")
    return 2 if bad else 0


def cmd_config_show(args: argparse.Namespace) -> int:
    from superion.layout import results_dir
    from superion.workflow.config import estimate_cost, md_steps, runs, selected_systems

    cfg = _load(args.config, check_files=True)
    if args.json:
        print(json.dumps(cfg, indent=2, sort_keys=True))
        return 0
    import yaml

    print(yaml.safe_dump(cfg, sort_keys=False).rstrip())
    print(f"# results: {results_dir(cfg)}")
    cost = estimate_cost(cfg)
    for s in selected_systems(cfg):
        info = cost["systems"][s]
        st = md_steps(cfg, s)
        print(f"# {s}: {info['runs']} runs x ({st['equilibration_steps']} + {st['steps']}) steps, "
              f"atoms ~{info['atoms'] if info['atoms'] is not None else '?'}")
    print(f"# total: {len(runs(cfg))} MD runs, ~{cost['atom_steps']:.3g} atom-steps "
          f"(~{cost['atom_steps'] / 450 / 3600:.2g} core-hours at 450 atom-steps/s on CPU)")
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    from superion.report.tables import write_tables

    cfg = _load(args.config)
    summary, diffusion = write_tables(cfg, Path(args.results) if args.results else None,
                                      args.summary and Path(args.summary), args.diffusion and Path(args.diffusion))
    print(f"wrote {summary} and {diffusion}")
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from superion.report.figures import make_figure

    cfg = _load(args.config)
    kinds = FIGURE_KINDS if args.kind == "all" else (args.kind,)
    if args.out and len(kinds) > 1:
        raise SuperionError("--out names one figure; drop it with 'all' (figures go to RESULTS/figures/)")
    for kind in kinds:
        paths = make_figure(kind, cfg, Path(args.results) if args.results else None,
                            Path(args.out) if args.out else None)
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0
