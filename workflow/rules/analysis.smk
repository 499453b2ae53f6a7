# Per-run analysis (diffusion, rotation, density) and per-(system, mass setting) Arrhenius fits.


def _run_dir(wc):
    return f"{RES}/" + layout.LAYOUT["run"].format(system=wc.system, mass=wc.mass, T=wc.T, seed=wc.seed)


def _fit_args(wc):
    an = sc.system_section(CFG, wc.system, "analysis")
    args = [f"--active-threshold-A2 {an['active_threshold_A2']:g}"]
    if an["fit_start_ps"] is not None:
        args.append(f"--fit-start-ps {an['fit_start_ps']:g}")
    if an["fit_end_ps"] is not None:
        args.append(f"--fit-end-ps {an['fit_end_ps']:g}")
    if an.get("msd_ref_lag_ps") is not None:
        args.append(f"--msd-ref-lag-ps {an['msd_ref_lag_ps']:g}")
    if an["active_normalization"] != "n_ions":
        args.append(f"--active-normalization {an['active_normalization']}")
    return " ".join(args)


def _opt(flag, key):
    def f(wc):
        v = sc.system_section(CFG, wc.system, "analysis").get(key)
        return "" if v is None else f"{flag} {v:g}"
    return f


ANALYSIS = f"{RES}/" + layout.LAYOUT["analysis"]
ALOG = "{system}/{mass}/T{T}K/seed{seed}"


rule diffusion:
    input:
        f"{RES}/" + layout.LAYOUT["run"] + "/" + layout.COMPLETE_NAME,
    output:
        json=f"{ANALYSIS}/" + layout.ANALYSIS_FILES["diffusion"],
        msd=f"{ANALYSIS}/" + layout.ANALYSIS_FILES["msd"],
    log:
        f"{LOGS}/diffusion/{ALOG}.log",
    benchmark:
        f"{BENCH}/diffusion/{ALOG}.tsv"
    params:
        run_dir=_run_dir,
        species=lambda wc: CFG["systems"][wc.system]["mobile_species"],
        args=_fit_args,
    resources:
        mem_mb=8000,
        runtime=120,
    shell:
        "{SUPERION} analyze diffusion {params.run_dir:q} --species {params.species} --json {output.json:q}"
        " {params.args} > {log:q} 2>&1"


rule rotation:
    input:
        f"{RES}/" + layout.LAYOUT["run"] + "/" + layout.COMPLETE_NAME,
    output:
        json=f"{ANALYSIS}/" + layout.ANALYSIS_FILES["rotation"],
        curves=f"{ANALYSIS}/" + layout.ANALYSIS_FILES["rotation_curves"],
    log:
        f"{LOGS}/rotation/{ALOG}.log",
    benchmark:
        f"{BENCH}/rotation/{ALOG}.tsv"
    params:
        run_dir=_run_dir,
        lag=_opt("--rotation-lag-ps", "rotation_lag_ps"),
    resources:
        mem_mb=8000,
        runtime=120,
    shell:
        "{SUPERION} analyze rotation {params.run_dir:q} --json {output.json:q} {params.lag} > {log:q} 2>&1"


rule density:
    input:
        f"{RES}/" + layout.LAYOUT["run"] + "/" + layout.COMPLETE_NAME,
    output:
        cube=f"{ANALYSIS}/" + layout.ANALYSIS_FILES["density"],
    log:
        f"{LOGS}/density/{ALOG}.log",
    benchmark:
        f"{BENCH}/density/{ALOG}.tsv"
    params:
        run_dir=_run_dir,
        species=lambda wc: CFG["systems"][wc.system]["mobile_species"],
        grid=_opt("--grid-spacing-A", "density_grid_spacing_A"),
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{SUPERION} analyze density {params.run_dir:q} --species {params.species} --out {output.cube:q} {params.grid}"
        " > {log:q} 2>&1"


# Does V or the cell drift during production? (thermo.csv only: cheap, no trajectory read)
rule equilibration:
    input:
        f"{RES}/" + layout.LAYOUT["run"] + "/" + layout.COMPLETE_NAME,
    output:
        f"{ANALYSIS}/" + layout.ANALYSIS_FILES["equilibration"],
    log:
        f"{LOGS}/equilibration/{ALOG}.log",
    benchmark:
        f"{BENCH}/equilibration/{ALOG}.tsv"
    params:
        run_dir=_run_dir,
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "{SUPERION} analyze equilibration {params.run_dir:q} --json {output:q} > {log:q} 2>&1"


def _group_diffusion(wc):
    return [run_path("analysis", r, layout.ANALYSIS_FILES["diffusion"]) for r in sc.runs(CFG, system=wc.system, mass=wc.mass)]


rule arrhenius:
    input:
        _group_diffusion,
    output:
        f"{RES}/" + layout.LAYOUT["arrhenius"],
    log:
        f"{LOGS}/arrhenius/{{system}}/{{mass}}.log",
    benchmark:
        f"{BENCH}/arrhenius/{{system}}/{{mass}}.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "{SUPERION} analyze arrhenius {input:q} --allow-no-fit --json {output:q} > {log:q} 2>&1"
