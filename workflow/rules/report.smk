# Tables and figures from the per-run and per-group JSON; no MD input, so deleting a figure or a
# table and rerunning regenerates it without touching the MD runs.


def _all_analysis(name):
    return [run_path("analysis", r, name) for r in sc.runs(CFG)]


def _density_inputs():
    runs = [r for r in sc.runs(CFG) if sc.system_section(CFG, r.system, "analysis")["density"]]
    return [run_path("analysis", r, layout.ANALYSIS_FILES["density"]) for r in runs]


rule tables:
    input:
        config=CONFIG_JSON,
        diffusion=_all_analysis(layout.ANALYSIS_FILES["diffusion"]),
        rotation=_all_analysis(layout.ANALYSIS_FILES["rotation"]),
        equilibration=_all_analysis(layout.ANALYSIS_FILES["equilibration"]),
        arrhenius=[f"{RES}/" + layout.LAYOUT["arrhenius"].format(system=s, mass=m) for s, m in sc.groups(CFG)],
    output:
        summary=report(
            f"{RES}/" + layout.LAYOUT["summary"],
            caption="../report/summary.rst",
            category="Tables",
        ),
        diffusion=report(
            f"{RES}/" + layout.LAYOUT["diffusion"],
            caption="../report/diffusion.rst",
            category="Tables",
        ),
    log:
        f"{LOGS}/tables.log",
    benchmark:
        f"{BENCH}/tables.tsv"
    resources:
        mem_mb=2000,
        runtime=15,
    shell:
        "{SUPERION} tables --config {input.config:q} --results {RES:q}"
        " --summary {output.summary:q} --diffusion {output.diffusion:q} > {log:q} 2>&1"


def _figure_inputs(kind):
    base = [CONFIG_JSON, rules.tables.output.summary, rules.tables.output.diffusion]
    if kind == "msd":
        base += _all_analysis(layout.ANALYSIS_FILES["msd"])
    if kind == "density":
        base += _density_inputs()
    if kind == "thermo":  # thermo.csv of each run (complete.json is written after it) + its verdict
        base += [run_path("run", r, layout.COMPLETE_NAME) for r in sc.runs(CFG)]
        base += _all_analysis(layout.ANALYSIS_FILES["equilibration"])
    return base


# One rule per figure kind (its own caption in workflow/report/<kind>.rst).
for _kind in layout.FIGURE_KINDS:

    rule:
        name:
            f"figure_{_kind}"
        input:
            _figure_inputs(_kind),
        output:
            pdf=f"{RES}/figures/{_kind}.pdf",
            svg=f"{RES}/figures/{_kind}.svg",
            png=report(
                f"{RES}/figures/{_kind}.png",
                caption=f"../report/{_kind}.rst",
                category="Figures",
            ),
        log:
            f"{LOGS}/figures/{_kind}.log",
        benchmark:
            f"{BENCH}/figures/{_kind}.tsv"
        params:
            kind=_kind,
            stem=f"{RES}/figures/{_kind}",
        resources:
            mem_mb=2000,
            runtime=15,
        shell:
            "{SUPERION} figures {params.kind} --config {CONFIG_JSON:q} --results {RES:q}"
            " --out {params.stem:q} > {log:q} 2>&1"


# The report's first page: what was resolved and what not, in words, with the table and figures.
rule summary_page:
    input:
        config=CONFIG_JSON,
        summary=rules.tables.output.summary,
        diffusion=rules.tables.output.diffusion,
        equilibration=_all_analysis(layout.ANALYSIS_FILES["equilibration"]),
        arrhenius=rules.tables.input.arrhenius,
        figures=expand(f"{RES}/figures/{{kind}}.png", kind=layout.FIGURE_KINDS),
    output:
        md=f"{RES}/{layout.LAYOUT['page']}.md",
        html=report(
            f"{RES}/{layout.LAYOUT['page']}.html",
            caption="../report/page.rst",
            category="Summary",
        ),
    log:
        f"{LOGS}/summary_page.log",
    benchmark:
        f"{BENCH}/summary_page.tsv"
    params:
        stem=f"{RES}/{layout.LAYOUT['page']}",
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "{SUPERION} summary-page --config {input.config:q} --results {RES:q} --out {params.stem:q} > {log:q} 2>&1"
