# superion workflow: prepare -> relax -> MD (system x T x mass setting x seed) -> per-run analysis
# -> per-(system, mass setting) Arrhenius -> tables -> figures (-> `snakemake --report`).
# Every rule is a thin call of one `superion` command. Layout and validation live in
# superion.config (one JSON schema for Snakemake and the code). See docs/workflow.md.
#
#   snakemake --cores 2 --configfile configs/default.yaml --rerun-incomplete
#   snakemake --configfile configs/default.yaml --report results/default/report.html

import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

import superion.workflow.config as sc
from superion import layout
from superion.atomic import write_text
from superion.errors import SuperionError

configfile: "configs/default.yaml"

report: "workflow/report/workflow.rst"

# ---- validate once, before any job: one clear line on bad input -----------------------
if "name" not in config:
    _cfgs = list(getattr(workflow, "configfiles", []) or [])
    config["name"] = Path(_cfgs[-1]).stem if _cfgs else "default"
try:
    _resolved = sc.validate_config(config, source=(str(workflow.configfiles[-1]) if workflow.configfiles else "config"))
except SuperionError as _exc:
    raise WorkflowError(str(_exc)) from None
validate(config, schema=str(sc.SCHEMA_PATH))  # the same schema through Snakemake (fills defaults)
config.clear()
config.update(_resolved)
CFG = _resolved

RES = str(layout.results_dir(CFG))
LOGS = f"{RES}/{layout.LAYOUT['logs']}"
BENCH = f"{RES}/{layout.LAYOUT['benchmarks']}"
# The superion of this environment (the Makefile does not activate the venv).
_exe = Path(sys.executable).parent / "superion"
SUPERION = f"'{_exe}'" if _exe.is_file() else f"'{sys.executable}' -m superion"

# The validated config, written only when it changed: tables/figures read it (and rerun when
# it changes); MD does not depend on it, so editing a caption or a figure setting reruns no MD.
_cfg_json = Path(RES) / layout.LAYOUT["config"]
# (without the keys that only choose how MD executes: batching on/off reruns no table)
_cfg_text = __import__("json").dumps({k: v for k, v in CFG.items() if k not in sc.EXECUTION_KEYS}, indent=2,
                                     sort_keys=True) + "\n"
if not _cfg_json.is_file() or _cfg_json.read_text() != _cfg_text:
    write_text(_cfg_json, _cfg_text)
CONFIG_JSON = str(_cfg_json)

wildcard_constraints:
    system=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    mass=r"[A-Za-z0-9][A-Za-z0-9_.+-]*",
    T=r"[0-9]+(\.[0-9]+)?",
    seed=r"[0-9]+",
    kind="|".join(layout.FIGURE_KINDS),


def run_path(key, run, name=""):
    p = f"{RES}/" + layout.LAYOUT[key].format(**run.wildcards)
    return f"{p}/{name}" if name else p


include: "workflow/rules/structures.smk"
include: "workflow/rules/md.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        f"{RES}/{layout.LAYOUT['summary']}",
        f"{RES}/{layout.LAYOUT['diffusion']}",
        expand(f"{RES}/figures/{{kind}}.{{ext}}", kind=layout.FIGURE_KINDS, ext=layout.FIGURE_FORMATS),
