# MD: one job per (system, mass setting, temperature, replica seed), or, with `md_batch` set
# (the GPU profile sets `md_batch=auto`), batched jobs: `superion md-batch` runs up to R runs of
# one (system, mass setting) in lockstep with one model call per step.
# Either way the outputs are the same RUN_DIR/complete.json files (written last by the MD
# command), so a failed or preempted job leaves RUN_DIR/checkpoint.* and trajectory.h5 in place
# and the rerun/retry resumes from the checkpoint instead of starting over.
#
# Switching batching on or off reruns nothing finished: both rules share one shell text
# (MD_SHELL) and the same non-derived params (potential, settings, device); what differs (the
# command and the runs of a job) is in params computed from the outputs, which Snakemake's
# code/params rerun triggers ignore. And if Snakemake does rerun a job (e.g. after a failure
# in its batch), complete replicas are skipped and finished ones only re-marked (no MD step).

import shlex

MD_SHELL = (
    "{SUPERION} {params.command} {input:q} --potential {params.potential:q} {params.settings}"
    " --device {params.device} --threads {threads} {params.runs} --wait-for-lock 86400 >> {log:q} 2>&1"
)


def _md_settings(system, mass):
    md = sc.system_section(CFG, system, "md")
    st = sc.md_steps(CFG, system)
    masses = " ".join(f"--mass-scale {a}" for a in sc.mass_scale_args(CFG, mass))
    return (
        f"--steps {st['steps']} --equilibration-steps {st['equilibration_steps']}"
        f" --timestep-fs {md['timestep_fs']:g} --ensemble {md['ensemble']}"
        f" --pressure-bar {md['pressure_bar']:g} --save-every {st['save_every']} {masses}"
        # only when set: the settings of configs without it (and their finished runs) stay as they were
        + (f" --pdamp-fs {md['pdamp_fs']:g}" if md.get("pdamp_fs") is not None else "")
        + f" {sc.models_dir_arg(CFG)}"  # "" unless the config sets models_dir
    ).strip()


_BATCHES = sc.md_batches(CFG)

if not _BATCHES:

    rule md:
        input:
            rules.relax.output.structure,
        output:
            f"{RES}/" + layout.LAYOUT["run"] + "/" + layout.COMPLETE_NAME,
        log:
            f"{LOGS}/md/{{system}}/{{mass}}/T{{T}}K/seed{{seed}}.log",
        benchmark:
            f"{BENCH}/md/{{system}}/{{mass}}/T{{T}}K/seed{{seed}}.tsv"
        params:
            potential=lambda wc: CFG["systems"][wc.system]["potential"],
            settings=lambda wc: _md_settings(wc.system, wc.mass),
            device=CFG["device"],
            command=lambda wc, output: "md",
            runs=lambda wc, output: (
                f"--temperature-K {wc.T} --seed {wc.seed} --out {shlex.quote(str(Path(output[0]).parent))}"
            ),
        threads: CFG["threads"]
        # Per attempt: a run longer than this is continued from its checkpoint by the next attempt
        # (profiles' retries) or the next invocation. On a cluster: --set-resources md:runtime=...
        resources:
            mem_mb=8000,
            runtime=1440,
        shell:
            MD_SHELL


def _batch_outputs(b):
    return [f"{RES}/" + layout.LAYOUT["run"].format(**r.wildcards) + "/" + layout.COMPLETE_NAME for r in b.runs]


# A replica's run directory inside runs/{system}/{mass}: "T{T}K/seed{seed}", from the layout.
_RUN_NAME = "/".join(Path(layout.LAYOUT["run"]).parts[-2:])


def _batch_runs(b):
    """--temperatures-K/--seeds/--name/--out of one batched job (a function of its outputs)."""
    def runs_args(wc, output):
        mass_dir = str(Path(output[0]).parents[2])  # runs/{system}/{mass}
        temps = " ".join(r.wildcards["T"] for r in b.runs)
        seeds = " ".join(r.wildcards["seed"] for r in b.runs)
        return (f"--temperatures-K {temps} --seeds {seeds} --name {shlex.quote(_RUN_NAME)}"
                f" --out {shlex.quote(mass_dir)}")

    return runs_args


for _k, _b in enumerate(_BATCHES):

    rule:
        name:
            f"md_batch_{_k}"
        input:
            f"{RES}/" + layout.LAYOUT["relaxed"].format(system=_b.system),
        output:
            _batch_outputs(_b),
        log:
            f"{LOGS}/md/{_b.system}/{_b.mass}/batch{_b.index}.log",
        benchmark:
            f"{BENCH}/md/{_b.system}/{_b.mass}/batch{_b.index}.tsv"
        params:
            potential=CFG["systems"][_b.system]["potential"],
            settings=_md_settings(_b.system, _b.mass),
            device=CFG["device"],
            command=lambda wc, output: "md-batch",
            runs=_batch_runs(_b),
        threads: CFG["threads"]
        resources:
            mem_mb=8000 + 500 * len(_b.runs),
            runtime=1440,
            gpu=0 if CFG["device"] == "cpu" else 1,
        shell:
            MD_SHELL
