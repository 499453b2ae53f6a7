# Structures: order + supercell + cluster labels (prepare), then relaxation with the system's potential.


def _prepare_args(wc):
    sysc = CFG["systems"][wc.system]
    args = []
    if "supercell" in sysc:
        args += ["--supercell"] + [str(n) for n in sysc["supercell"]]
    elif "min_width_A" in sysc:
        args += ["--min-width-A", f"{sysc['min_width_A']:g}"]
    else:  # neither: the unit cell (prepare's own default would be 10 A widths)
        args += ["--supercell", "1", "1", "1"]
    args += ["--seed", str(sc.system_section(CFG, wc.system, "prepare")["seed"])]
    args += ["--mobile-species", sysc["mobile_species"]]  # a structure that lost it is refused
    return " ".join(args)


rule prepare:
    input:
        lambda wc: CFG["systems"][wc.system]["structure"],
    output:
        structure=f"{RES}/" + layout.LAYOUT["prepared"],
        report=f"{RES}/" + layout.LAYOUT["prepared_report"],
    log:
        f"{LOGS}/prepare/{{system}}.log",
    benchmark:
        f"{BENCH}/prepare/{{system}}.tsv"
    params:
        args=_prepare_args,
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{SUPERION} prepare {input:q} --out {output.structure:q} {params.args} > {log:q} 2>&1"


rule relax:
    input:
        rules.prepare.output.structure,
    output:
        structure=f"{RES}/" + layout.LAYOUT["relaxed"],
        report=f"{RES}/" + layout.LAYOUT["relaxed_report"],
    log:
        f"{LOGS}/relax/{{system}}.log",
    benchmark:
        f"{BENCH}/relax/{{system}}.tsv"
    params:
        potential=lambda wc: CFG["systems"][wc.system]["potential"],
        fmax=lambda wc: sc.system_section(CFG, wc.system, "relax")["fmax_eV_A"],
        max_steps=lambda wc: sc.system_section(CFG, wc.system, "relax")["max_steps"],
        # No GPU is requested for relaxation (only MD asks for one): `cuda` becomes `auto` here,
        # so a relax job scheduled on a CPU node runs instead of failing. "auto" or
        # "auto --models-dir DIR": without models_dir the shell text stays as before, so
        # Snakemake's code/params rerun triggers do not redo old results.
        device=" ".join(filter(None, ["auto" if CFG["device"] == "cuda" else CFG["device"], sc.models_dir_arg(CFG)])),
    threads: CFG["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
    shell:
        "{SUPERION} relax {input:q} --potential {params.potential:q} --out {output.structure:q}"
        " --fmax {params.fmax} --max-steps {params.max_steps} --device {params.device}"
        " --threads {threads} > {log:q} 2>&1"
