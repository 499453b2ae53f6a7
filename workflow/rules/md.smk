# MD: one job per (system, mass setting, temperature, replica seed).
# Only RUN_DIR/complete.json (written last by `superion md`) is declared as output, so a failed
# or preempted job leaves RUN_DIR/checkpoint.* and trajectory.h5 in place and the rerun/retry
# resumes from the checkpoint instead of starting over.


def _md_params(wc):
    md = sc.system_section(CFG, wc.system, "md")
    st = sc.md_steps(CFG, wc.system)
    mass = " ".join(f"--mass-scale {a}" for a in sc.mass_scale_args(CFG, wc.mass))
    return (
        f"--steps {st['steps']} --equilibration-steps {st['equilibration_steps']}"
        f" --timestep-fs {md['timestep_fs']:g} --ensemble {md['ensemble']}"
        f" --pressure-bar {md['pressure_bar']:g} --save-every {st['save_every']} {mass}"
        f" {sc.models_dir_arg(CFG)}"  # "" unless the config sets models_dir
    ).strip()


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
        settings=_md_params,
        device=CFG["device"],
        run_dir=lambda wc, output: str(Path(output[0]).parent),
    threads: CFG["threads"]
    # Per attempt: a run longer than this is continued from its checkpoint by the next attempt
    # (profiles' retries) or the next invocation. On a cluster: --set-resources md:runtime=...
    resources:
        mem_mb=8000,
        runtime=1440,
    shell:
        "{SUPERION} md {input:q} --potential {params.potential:q} --temperature-K {wildcards.T}"
        " {params.settings} --seed {wildcards.seed} --device {params.device} --threads {threads}"
        " --out {params.run_dir:q} --wait-for-lock 86400 >> {log:q} 2>&1"
