"""The report's first page (report.page) and the thermo figure, on a hand-made results folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from superion import layout
from superion.cli import main
from superion.report.page import page_content, write_page
from superion.report.tables import to_csv

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"

# The statistics fields of the diffusion JSON (regime, bound, MSD at a reference lag, hops) ...
NEW_DIFF = {
    "species": "Na", "temperature_K": 800.0, "duration_ps": 2.2, "regime": "subdiffusive",
    "regime_reasons": ["ln-ln slope of the MSD over the window is 0.31 < 0.8"],
    "diffusivity_cm2_s": None, "diffusivity_stderr_cm2_s": None, "diffusivity_upper_bound_cm2_s": 2.0e-5,
    "msd_ref_A2": 4.5, "msd_ref_ci95_A2": [3.9, 5.2], "msd_ref_lag_ps": 1.0,
    "n_hops": 12, "hop_rate_per_s": 3.0e11, "hop_rate_ci95_per_s": [2.0e11, 4.0e11],
}
# ... and a diffusion JSON written before them.
OLD_DIFF = {"species": "Na", "temperature_K": 600.0, "diffusivity_cm2_s": 1.0e-7, "diffusivity_stderr_cm2_s": 5.0e-7}


def _results(tmp_path: Path) -> Path:
    res = tmp_path / "results" / "t"
    runs, summary = [], []
    for system, diff, T, arr in (("oNBH", NEW_DIFF, 800.0, {"resolved": False, "not_resolved_reason": "1 temperature",
                                                              "hops_resolved": False, "hops_not_resolved_reason": "1 temperature"}),
                                 ("NaBH4", OLD_DIFF, 600.0, {"Ea_eV": 0.3, "Ea_stderr_eV": 0.5})):
        w = dict(system=system, mass="ref", T=f"{T:g}", seed=1)
        adir = res / layout.LAYOUT["analysis"].format(**w)
        adir.mkdir(parents=True)
        layout.analysis_file(adir, "diffusion").write_text(json.dumps(diff))
        runs.append({"system": system, "label": system, "mass_setting": "ref", "temperature_K": T, "seed": 1,
                     "production_ps": 2.0, "diffusion_json": str(layout.analysis_file(adir, "diffusion")),
                     "run_dir": str(res / layout.LAYOUT["run"].format(**w))})
        summary.append({"system": system, "label": system, "mass_setting": "ref", "mass_scaling": "none",
                        "temperatures_K": f"{T:g}", "Ea_eV": arr.get("Ea_eV"), "warnings": "only 1 temperature(s)"})
        arr_path = res / layout.LAYOUT["arrhenius"].format(system=system, mass="ref")
        arr_path.parent.mkdir(parents=True, exist_ok=True)
        arr_path.write_text(json.dumps(arr))
    equil = {"verdict": "drifting", "reasons": ["V drifts +20 %"], "flags": [{"quantity": "V", "kind": "drift", "value": 0.2}]}
    onbh = res / layout.LAYOUT["analysis"].format(system="oNBH", mass="ref", T="800", seed=1)
    layout.analysis_file(onbh, "equilibration").write_text(json.dumps(equil))
    (res / layout.LAYOUT["summary"]).write_text(to_csv(summary, ["system", "label", "mass_setting"]))
    (res / layout.LAYOUT["diffusion"]).write_text(to_csv(runs, ["system", "label", "mass_setting"]))
    fig = res / layout.LAYOUT["figure"].format(kind="msd.png")
    fig.parent.mkdir(parents=True)
    fig.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)  # the page embeds the bytes; their content is not read
    return res


def test_page_says_what_is_resolved_and_what_is_not(tmp_path):
    res = _results(tmp_path)
    content = page_content({"name": "t"}, res)
    onbh, nabh4 = content["groups"]
    text = " ".join(onbh["lines"])
    assert "Na MSD(1 ps) = 4.5 [3.9, 5.2] Å²" in text
    assert "subdiffusive (ln-ln slope" in text and "D < 2e-05 cm²/s" in text
    assert "D = " not in text  # an unresolved D is never written as a value
    assert "hop rate 3e+11 [2e+11, 4e+11] /s (12 hops)" in text
    assert "cell drifting (V +20.0 %): NOT equilibrium data" in text
    assert onbh["lines"][-1] == ("Arrhenius: not resolved: 1 temperature; "
                                 "hop-rate Arrhenius not resolved: 1 temperature")
    # a diffusion JSON without the statistics fields: value labelled, Arrhenius judged here
    old = " ".join(nabh4["lines"])
    assert "regime not assessed" in old and "equilibration not checked" in old
    assert nabh4["lines"][-1] == "Arrhenius: not resolved: 1 temperature(s)"
    assert [k for k, _ in content["figures"]] == ["msd"]


def test_write_page_md_and_self_contained_html(tmp_path):
    res = _results(tmp_path)
    md, page = write_page({"name": "t"}, res)
    assert md == res / "report" / "index.md" and page == res / "report" / "index.html"
    html = page.read_text()
    assert "data:image/png;base64,iVBORw0KGgo" in html  # figure embedded, not linked
    assert "<table>" in html and "<th>Ea_eV</th>" in html
    assert "D &lt; 2e-05 cm²/s" in html
    assert "](../figures/msd.png)" in md.read_text()


def test_summary_page_cli(tmp_path, capsys):
    res = _results(tmp_path)
    cfg = REPO / "configs" / "smoke.yaml"
    assert main(["summary-page", "--config", str(cfg), "--results", str(res), "--out", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p.html").is_file() and (tmp_path / "p.md").is_file()
    assert main(["summary-page", "--config", str(cfg), "--results", str(tmp_path / "none")]) == 2
    assert "table not found" in capsys.readouterr().err


def test_thermo_figure_draws_every_group_with_its_verdict(tmp_path):
    pytest.importorskip("matplotlib")
    from superion.report.thermo import thermo_figure

    runs, summary = [], []
    for name, src, verdict in (("aniso", "thermo_oNBH_800K_aniso.csv", "drifting"), ("iso", "thermo_oNBH_800K_iso.csv", "equilibrated")):
        run, adir = tmp_path / name / "run", tmp_path / name / "analysis"
        run.mkdir(parents=True)
        adir.mkdir()
        (run / "thermo.csv").write_bytes((DATA / src).read_bytes())
        layout.analysis_file(adir, "equilibration").write_text(json.dumps({"verdict": verdict, "flags": []}))
        runs.append({"system": "oNBH", "mass_setting": name, "temperature_K": 800.0, "seed": 1,
                     "run_dir": str(run), "diffusion_json": str(adir / "diffusion.json")})
        summary.append({"system": "oNBH", "mass_setting": name, "label": f"o-NBH {name}", "mass_scaling": "none"})
    fig = thermo_figure({"md": {"pressure_bar": 1.0}}, summary, runs)
    try:
        labels = [t.get_text() for sf in fig.subfigs for leg in sf.legends for t in leg.get_texts()]
        assert labels == ["800 K: DRIFTING", "800 K: equilibrated"]
        assert len([ax for ax in fig.get_axes() if ax.get_visible()]) == 12  # 2 groups x 6 quantities
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_resolved_values_are_given_with_their_intervals():
    from superion.report.page import group_sentence, run_sentence

    arr = {"resolved": True, "Ea_eV": 0.2, "Ea_ci95_eV": [0.15, 0.25], "conductivity_300K_mS_cm": 1.2,
           "conductivity_300K_ci95_mS_cm": [0.3, 4.0], "hops_resolved": True, "Ea_hops_eV": 0.22, "Ea_hops_ci95_eV": [0.2, 0.24]}
    assert group_sentence({"temperatures_K": "600;700;800"}, arr) == (
        "Arrhenius: Ea = 0.2 [0.15, 0.25] eV; σ(300 K) = 1.2 [0.3, 4] mS/cm; Ea from hop rates = 0.22 [0.2, 0.24] eV")
    diff = {"species": "Na", "regime": "diffusive", "diffusivity_cm2_s": 3e-6, "diffusivity_ci95_cm2_s": [2e-6, 4e-6]}
    text = run_sentence({"temperature_K": 800.0, "seed": 2.0}, diff, {"verdict": "equilibrated"})
    assert text == "800 K, seed 2: diffusive → D = 3e-06 [2e-06, 4e-06] cm²/s; cell equilibrated"


def test_contrast_sentence_is_resolved_only_without_overlap():
    from superion.report.page import contrasts

    base = {"msd_ref_lag_ps": 1.0, "temperature_K": 800.0, "mass_setting": "ref"}
    a = {**base, "system": "oNBH", "label": "o-NBH", "msd_ref_A2": 3.1, "msd_ref_ci95_low_A2": 2.1, "msd_ref_ci95_high_A2": 4.4}
    b = {**base, "system": "NaBH4", "label": "NaBH4", "msd_ref_A2": 0.82, "msd_ref_ci95_low_A2": 0.71, "msd_ref_ci95_high_A2": 0.95}
    (line,) = contrasts([b, a])
    assert line.startswith("Resolved:") and "o-NBH (ref) 3.1 [2.1, 4.4]" in line and "3.8x larger in o-NBH" in line
    (line,) = contrasts([a, {**b, "msd_ref_ci95_high_A2": 2.5}])
    assert line.startswith("Not resolved:") and "overlap" in line
    assert contrasts([a, {**b, "temperature_K": 700.0}]) == []  # different temperatures are not compared
