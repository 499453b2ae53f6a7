"""Where every file of a sweep lives: the one owner of path names.

The Snakefile, the rules (``workflow/rules/*.smk``), the MD engine, the trajectory reader and
the tables/figures all take names from here; nothing else spells them out.

- :data:`RUN_FILES`: the files of one MD run directory (``superion md --out RUN_DIR``).
- :data:`ANALYSIS_FILES`: the per-run analysis outputs.
- :data:`LAYOUT`: the results tree of a sweep, relative to ``results_dir(cfg)``.
"""

from __future__ import annotations

from pathlib import Path

# One MD run directory (see docs/architecture.md, "MD run directory").
METADATA_NAME = "metadata.json"
THERMO_NAME = "thermo.csv"
TRAJECTORY_NAME = "trajectory.h5"
CHECKPOINT_NAME = "checkpoint.npz"
COMPLETE_NAME = "complete.json"
RUN_FILES = {
    "metadata": METADATA_NAME,
    "thermo": THERMO_NAME,
    "trajectory": TRAJECTORY_NAME,
    "checkpoint": CHECKPOINT_NAME,
    "complete": COMPLETE_NAME,
}

# Per-run analysis outputs (in LAYOUT["analysis"]).
ANALYSIS_FILES = {
    "diffusion": "diffusion.json",
    "msd": "diffusion.npz",  # MSD curves beside diffusion.json
    "rotation": "rotation.json",
    "rotation_curves": "rotation.npz",
    "density": "density.cube",
    "equilibration": "equilibration.json",  # thermo drift check (analysis.equilibration)
}

# Results layout, relative to results_dir(cfg) = <results_dir>/<name>.
LAYOUT = {
    "config": "config.json",
    "prepared": "structures/{system}/prepared.extxyz",
    "prepared_report": "structures/{system}/prepared.json",
    "relaxed": "structures/{system}/relaxed.extxyz",
    "relaxed_report": "structures/{system}/relaxed.json",
    "run": "runs/{system}/{mass}/T{T}K/seed{seed}",
    "analysis": "analysis/{system}/{mass}/T{T}K/seed{seed}",
    "arrhenius": "arrhenius/{system}/{mass}.json",
    "summary": "summary.csv",
    "diffusion": "diffusion.csv",
    "page": "report/index",  # first page of the report: index.md + index.html (report.page)
    "figure": "figures/{kind}",
    "logs": "logs",
    "benchmarks": "benchmarks",
}

FIGURE_KINDS = ("arrhenius", "mass_scaling", "rotation", "msd", "density", "thermo")
FIGURE_FORMATS = ("pdf", "svg", "png")


def temp_tag(temperature_K: float) -> str:
    """Path tag of a temperature (the ``{T}`` of ``T{T}K``): 600 -> '600', 612.5 -> '612.5'."""
    t = float(temperature_K)
    return str(int(t)) if t.is_integer() else repr(t)


def results_dir(cfg: dict) -> Path:
    """<results_dir>/<name> of a validated config."""
    return Path(cfg.get("results_dir", "results")) / cfg["name"]


def path(cfg: dict, key: str, **wildcards) -> Path:
    """A results path from :data:`LAYOUT`, e.g. ``path(cfg, 'arrhenius', system='oNBH', mass='ref')``."""
    return results_dir(cfg) / LAYOUT[key].format(**wildcards)


def run_file(run_dir: str | Path, key: str) -> Path:
    """A file of an MD run directory by its :data:`RUN_FILES` key."""
    return Path(run_dir) / RUN_FILES[key]


def analysis_file(analysis_dir: str | Path, key: str) -> Path:
    """A per-run analysis output by its :data:`ANALYSIS_FILES` key."""
    return Path(analysis_dir) / ANALYSIS_FILES[key]
