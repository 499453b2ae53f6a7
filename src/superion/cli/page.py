"""``superion summary-page``: the report's first page (index.md + self-contained index.html).

    superion summary-page --config results/default/config.json   # results/default/report/index.{md,html}
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "summary-page",
        help="write the report's first page: what was resolved and what not, the summary table, key figures",
        description="From summary.csv, diffusion.csv, the analysis JSON and the figures of a sweep: "
                    "RESULTS/report/index.md and a self-contained index.html (figures embedded).",
    )
    p.add_argument("--config", required=True, help="the sweep's config (configs/X.yaml or results/X/config.json)")
    p.add_argument("--results", help="results folder of the sweep (default: <results_dir>/<name>)")
    p.add_argument("--out", help="output path without extension (default RESULTS/report/index)")
    p.set_defaults(func=cmd_summary_page)


def cmd_summary_page(args: argparse.Namespace) -> int:
    from superion.report.page import write_page
    from superion.workflow.config import load_config

    md, page = write_page(load_config(args.config, check_files=False), args.results, args.out)
    print(f"superion summary-page: {md} and {page}")
    return 0
