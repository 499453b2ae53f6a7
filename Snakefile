# superion workflow: prepare -> relax -> MD (system x T x mass setting x seed) -> per-run analysis
# -> per-(system, mass setting) Arrhenius -> tables -> figures (-> `snakemake --report`).
# Every rule is a thin call of one `superion` command. Layout and validation live in
# superion.workflow.config (one JSON schema for Snakemake and the code). See docs/workflow.md.
#
#   snakemake --cores 2 --configfile configs/default.yaml --rerun-incomplete
#   snakemake --configfile configs/default.yaml --report results/default/report.html

import json
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

import superion.locks as sl
import superion.workflow.config as sc
from superion import layout
from superion.atomic import write_text
from superion.errors import SuperionError

# After kill -9 of a Snakemake run in this directory its lock files remain ("Directory cannot
# be locked"): remove those of a process that is gone (recorded in onstart below), or print the
# exact --unlock command when that cannot be told. Jobs (SLURM, --mode remote) do not lock.
if workflow.is_main_process:
    sl.clear_stale_snakemake_locks()


onstart:
    sl.record_snakemake_lock_owner(getattr(workflow.persistence, "_lockfile", {}).values())


onsuccess:
    sl.forget_snakemake_lock_owner()


onerror:
    sl.forget_snakemake_lock_owner()


# The default sweep only when no --configfile is given. A plain `configfile:` would be
# deep-merged UNDER every --configfile (Snakemake's rule), adding default.yaml's systems and
# settings to any other config; each config in configs/ is complete on its own.
if not workflow.overwrite_configfiles:
    configfile: "configs/default.yaml"

report: "workflow/report/workflow.rst"

# ---- validate once, before any job: one clear line on bad input -----------------------
_cfgs = [str(p) for p in (workflow.overwrite_configfiles or workflow.configfiles)]
if "name" not in config:
    config["name"] = Path(_cfgs[-1]).stem if _cfgs else "default"
try:
    _resolved = sc.validate_config(config, source=(_cfgs[-1] if _cfgs else "config"))
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

def _first_difference(a, b, where="config"):
    """Dotted key of the first difference between two JSON-like values (for one error line)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{where}.{k}"
            if a[k] != b[k]:
                return _first_difference(a[k], b[k], f"{where}.{k}")
    return where


# The validated config, written only when it changed: tables/figures read it (and rerun when
# it changes); MD does not depend on it, so editing a caption or a figure setting reruns no MD.
# Only the main Snakemake process writes it. A job on a cluster (SLURM) parses this file again
# from the --configfiles/--config the main process hands it; it must arrive at exactly the
# config the main process validated, else it stops with one line instead of running another.
_cfg_json = Path(RES) / layout.LAYOUT["config"]
# (without the keys that only choose how MD executes: batching on/off reruns no table)
_cfg_public = {k: v for k, v in CFG.items() if k not in sc.EXECUTION_KEYS}
_cfg_text = json.dumps(_cfg_public, indent=2, sort_keys=True) + "\n"
_cfg_old = _cfg_json.read_text() if _cfg_json.is_file() else None
if workflow.is_main_process:
    if _cfg_old != _cfg_text:
        write_text(_cfg_json, _cfg_text)
elif _cfg_old != _cfg_text:
    raise WorkflowError(
        f"config of this job differs from {_cfg_json}, the one the main Snakemake process validated"
        + (f" (first difference: {_first_difference(json.loads(_cfg_old), _cfg_public)})" if _cfg_old else " (file missing)")
        + "; rerun the main snakemake command")
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


# Every rule states its resources: threads (the config's `threads` for relax and MD, else 1),
# mem_mb and runtime (minutes per attempt). Profiles add none, except that the GPU profile
# (and, on SLURM, --set-resources md:gres=gpu:1) gives MD a GPU; nothing else asks for one.
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
        f"{RES}/{layout.LAYOUT['page']}.html",
