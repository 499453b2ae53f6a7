"""Tables and figures from synthetic per-run JSON (no MD): fast, and each check can fail."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from superion import layout
from superion.workflow import config as sc
from superion.errors import SuperionError

KB = 8.617333262e-5
EA = {"ref": 0.30, "B12H12x10": 0.32, "B12H12x3": 0.31}
D0 = {"ref": 1e-2, "B12H12x10": 2e-3, "B12H12x3": 5e-3}


def _cfg(tmp_path: Path) -> dict:
    cfg = {
        "name": "synth",
        "results_dir": str(tmp_path / "results"),
        "temperatures_K": [600, 700, 800],
        "seeds": [1, 2],
        "mass_settings": {"ref": {}, "B12H12x3": {"B12H12": 3}, "B12H12x10": {"B12H12": 10}},
        "analysis": {"active_normalization": 10},
        "md": {"production_ps": 1.0, "equilibration_ps": 0.1, "save_every_fs": 10.0},
        "systems": {
            "oNBH": {"structure": "x.cif", "potential": "M3GNet-r2SCAN-NaBH", "mobile_species": "Na",
                     "label": "o-NBH", "mass_settings": ["ref", "B12H12x3", "B12H12x10"]},
            "NaBH4": {"structure": "y.cif", "potential": "M3GNet-r2SCAN-NaBH", "mobile_species": "Na",
                      "temperatures_K": [700, 800]},
        },
    }
    return sc.validate_config(cfg, check_files=False)


def _write_results(cfg: dict) -> Path:
    """Synthetic analysis outputs in the workflow layout; D follows an Arrhenius law per group."""
    from ase import Atoms
    from ase.io.cube import write_cube

    res = layout.results_dir(cfg)
    for run in sc.runs(cfg):
        adir = sc.analysis_dir(cfg, run)
        adir.mkdir(parents=True, exist_ok=True)
        T = run.temperature_K
        D = D0[run.mass] * math.exp(-EA[run.mass] / (KB * T)) * (1 + 0.05 * (run.seed - 1.5))
        n_active = int(round(12 * (T - 500) / 400 / sc.mass_series(cfg, run.mass)[1] ** 0.3))
        diff = {"temperature_K": T, "regime": "diffusive", "diffusivity_cm2_s": D, "diffusivity_stderr_cm2_s": 0.1 * D,
                "diffusivity_ci95_cm2_s": [0.8 * D, 1.2 * D], "diffusivity_upper_bound_cm2_s": None,
                "conductivity_mS_cm": D * 1e6, "conductivity_stderr_mS_cm": D * 1e5, "haven_ratio": 0.5,
                "n_active": n_active, "active_fraction": n_active / 12, "n_ions": 12, "volume_A3": 1300.0,
                "active_fraction_ci95": [max(n_active - 3, 0) / 12, min(n_active + 3, 12) / 12], "active_normalization": 12.0,
                "msd_at_fit_end_A2": 6.0 * D * 1e4 * 1.0, "fit_start_ps": 0.1, "fit_end_ps": 0.9, "hop_length_A": 3.4,
                "n_hops": 40, "hop_rate_per_s": 3.3e11, "hop_rate_ci95_per_s": [2.4e11, 4.5e11],
                "msd_ref_lag_ps": 1.0, "msd_ref_A2": 6 * D * 1e4 + 0.5, "msd_ref_ci95_A2": [5 * D * 1e4, 7 * D * 1e4 + 1],
                "active_threshold_A2": 21.0, "warnings": ["short trajectory (1 ps < 100 ps): D is noisy"]}
        if run.system == "NaBH4":  # caged: no D, an upper bound (the default run's NaBH4)
            diff.update(regime="immobile", diffusivity_cm2_s=None, diffusivity_stderr_cm2_s=None, diffusivity_ci95_cm2_s=None,
                        diffusivity_upper_bound_cm2_s=3e-6, conductivity_mS_cm=None, conductivity_upper_bound_mS_cm=5.0,
                        haven_ratio=None, n_hops=0, hop_rate_per_s=0.0, hop_rate_ci95_per_s=[0.0, 3.1e10], msd_ref_A2=0.8,
                        msd_ref_ci95_A2=[0.7, 0.9])
        (adir / "diffusion.json").write_text(json.dumps(diff))
        t = np.linspace(0, 1.0, 50)
        msd = 6 * D * 1e4 * t + 0.5 if run.system == "oNBH" else 0.8 * (1 - np.exp(-t / 0.05))
        np.savez(adir / "diffusion.npz", lag_ps=t, msd_A2=msd, beta_lag_ps=t[1:], beta=np.gradient(np.log(msd[1:] + 1e-9), np.log(t[1:])))
        f = sc.mass_series(cfg, run.mass)[1]
        rot = {"BH4": {"n_clusters": 4, "rotation_speed_rad_ps": 2.0 * T / 800, "c1_tau_ps": 0.3, "c2_tau_ps": 0.1}}
        if run.system == "oNBH":
            rot["B12H12"] = {"n_clusters": 4, "rotation_speed_rad_ps": T / 800 / math.sqrt(f), "c1_tau_ps": 2.0, "c2_tau_ps": 0.7}
        (adir / "rotation.json").write_text(json.dumps(rot))
        grid = np.random.default_rng(run.seed).random((6, 5, 4))
        with open(adir / "density.cube", "w") as fh:
            write_cube(fh, Atoms("Na", positions=[[1, 1, 1]], cell=[8, 7, 6], pbc=True), data=grid)
    for system, mass in sc.groups(cfg):
        ea, d0 = EA[mass], D0[mass]
        d300 = d0 * math.exp(-ea / (KB * 300))
        arr = {"resolved": True, "not_resolved_reason": None, "Ea_eV": ea, "Ea_stderr_eV": 0.02, "Ea_ci95_eV": [ea - 0.05, ea + 0.05],
               "D0_cm2_s": d0, "diffusivity_300K_cm2_s": d300, "conductivity_300K_mS_cm": d300 * 1e6,
               "conductivity_300K_ci95_mS_cm": [d300 * 5e5, d300 * 2e6], "sigma_300K_ci95_mS_cm": [d300 * 5e5, d300 * 2e6],
               "Ea_hops_eV": None, "hops_not_resolved_reason": "hops at 0 temperature(s), the fit needs >= 3"}
        if system == "NaBH4":
            arr = {"resolved": False, "fitted": False, "not_resolved_reason": "0 temperature(s) with a resolved D (diffusive regime); need >= 3",
                   "Ea_eV": None, "D0_cm2_s": None, "conductivity_300K_mS_cm": None, "sigma_300K_ci95_mS_cm": None}
        p = layout.path(cfg, "arrhenius", system=system, mass=mass)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(arr))
    return res


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_tables_from_synthetic_json(tmp_path):
    from superion.report.tables import write_tables

    cfg = _cfg(tmp_path)
    res = _write_results(cfg)
    summary_path, diffusion_path = write_tables(cfg)
    runs = _rows(diffusion_path)
    summary = _rows(summary_path)
    assert len(runs) == len(sc.runs(cfg)) == 3 * 3 * 2 + 2 * 2
    assert len(summary) == len(sc.groups(cfg)) == 4
    row = next(r for r in summary if r["system"] == "oNBH" and r["mass_setting"] == "B12H12x10")
    assert float(row["Ea_eV"]) == pytest.approx(EA["B12H12x10"])
    assert row["mass_series"] == "B12H12" and float(row["mass_factor"]) == 10
    assert float(row["sigma_300K_ci95_low_mS_cm"]) < float(row["sigma_300K_mS_cm"]) < float(row["sigma_300K_ci95_high_mS_cm"])
    # active fraction normalized by the configured 10, averaged over both seeds
    n_active = int(round(12 * (800 - 500) / 400 / 10 ** 0.3))
    assert float(row["active_fraction_800K"]) == pytest.approx(n_active / 10)
    assert float(row["rotation_B12H12_800K_rad_ps"]) == pytest.approx(1 / math.sqrt(10))
    assert "short runs" in row["warnings"]
    ref = next(r for r in summary if r["system"] == "NaBH4")
    assert ref["mass_series"] == "ref" and ref["temperatures_K"] == "700;800"
    assert ref["active_fraction_600K"] == ""  # NaBH4 has no 600 K run
    assert "only 2 temperature(s)" in ref["warnings"]
    # what the data do not resolve is said, not printed as a number
    assert ref["resolved"] == "false" and ref["Ea_eV"] == "" and ref["sigma_300K_mS_cm"] == ""
    assert ref["Ea_text_eV"].startswith("not resolved: 0 temperature(s)") and ref["sigma_300K_text_mS_cm"].startswith("not resolved")
    assert "D not resolved (non-diffusive: upper bound only) at 700 K, 800 K" in ref["warnings"]
    assert ref["regimes"] == "700K:immobile;800K:immobile" and float(ref["msd_ref_800K_A2"]) == pytest.approx(0.8)
    assert row["resolved"] == "true" and row["Ea_text_eV"] == f"{EA['B12H12x10']:.3g} [{EA['B12H12x10'] - 0.05:.3g}, {EA['B12H12x10'] + 0.05:.3g}]"
    caged = [r for r in runs if r["system"] == "NaBH4"]
    assert all(r["D_text_cm2_s"] == "< 3e-06" and r["diffusivity_cm2_s"] == "" and r["regime"] == "immobile" for r in caged)
    assert all(r["hop_rate_text_per_s"] == "0 [0, 3.1e+10]" and r["msd_ref_text_A2"] == "0.8 [0.7, 0.9]" for r in caged)
    # the active-fraction interval follows the table's normalization (10 here, 12 in the JSON)
    c0 = caged[0]
    assert float(c0["active_fraction_ci95_high"]) == pytest.approx(min(int(c0["n_active"]) + 3, 12) / 10)
    r0 = next(r for r in runs if r["system"] == "oNBH" and r["mass_setting"] == "ref"
              and r["temperature_K"] == "700" and r["seed"] == "2")
    d_expected = D0["ref"] * math.exp(-EA["ref"] / (KB * 700)) * 1.025
    assert float(r0["diffusivity_cm2_s"]) == pytest.approx(d_expected, rel=1e-5)
    assert r0["regime"] == "diffusive" and r0["D_text_cm2_s"] == f"{d_expected:.3g} [{0.8 * d_expected:.3g}, {1.2 * d_expected:.3g}]"
    assert Path(r0["msd_npz"]).is_file() and Path(r0["density_cube"]).is_file()
    assert float(r0["BH4_c1_tau_ps"]) == pytest.approx(0.3)
    assert res == summary_path.parent


def test_tables_missing_result_is_one_line_error(tmp_path):
    from superion.report.tables import write_tables

    cfg = _cfg(tmp_path)
    _write_results(cfg)
    victim = sc.analysis_dir(cfg, sc.runs(cfg)[3]) / "diffusion.json"
    victim.unlink()
    with pytest.raises(SuperionError, match="missing result file"):
        write_tables(cfg)
    victim.write_text("{not json")
    with pytest.raises(SuperionError, match="not valid JSON"):
        write_tables(cfg)


def test_active_normalization_n_ions(tmp_path):
    from superion.report.tables import active_fraction

    assert active_fraction({"n_active": 3, "n_ions": 12}, "n_ions") == pytest.approx(0.25)
    assert active_fraction({"n_active": 3, "n_ions": 12}, 96) == pytest.approx(3 / 96)
    assert active_fraction({"active_fraction": 0.5}, "n_ions") == 0.5


@pytest.mark.parametrize("kind", layout.FIGURE_KINDS)
def test_figures_written_as_vector_and_png(tmp_path, kind):
    from superion.report.figures import make_figure
    from superion.report.tables import write_tables

    cfg = _cfg(tmp_path)
    _write_results(cfg)
    write_tables(cfg)
    paths = make_figure(kind, cfg)
    assert [p.suffix for p in paths] == [".pdf", ".svg", ".png"]
    pdf, svg, png = (p.read_bytes() for p in paths)
    assert pdf.startswith(b"%PDF") and b"<svg" in svg[:2000] and png.startswith(b"\x89PNG")
    assert len(png) > 5000  # something was drawn
    assert not list(paths[0].parent.glob(".*"))  # no temporary files left behind


def test_figures_without_mass_scaling_or_rotation(tmp_path):
    """A sweep without mass scaling still yields every figure (with an explanatory panel)."""
    from superion.report.figures import make_figure
    from superion.report.tables import write_tables

    cfg = _cfg(tmp_path)
    cfg["systems"]["oNBH"]["mass_settings"] = ["ref"]
    cfg = sc.validate_config(cfg, check_files=False)
    _write_results(cfg)
    write_tables(cfg)
    for kind in layout.FIGURE_KINDS:
        assert all(p.stat().st_size > 0 for p in make_figure(kind, cfg))


def test_cli_tables_and_figures(tmp_path):
    cfg = _cfg(tmp_path)
    res = _write_results(cfg)
    cfg_path = tmp_path / "synth.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    run = lambda *a: subprocess.run([sys.executable, "-m", "superion", *a], capture_output=True, text=True)
    p = run("tables", "--config", str(cfg_path))
    assert p.returncode == 0, p.stderr
    assert (res / "summary.csv").is_file() and (res / "diffusion.csv").is_file()
    p = run("figures", "arrhenius", "--config", str(cfg_path), "--out", str(tmp_path / "a"))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "a.png").is_file() and (tmp_path / "a.svg").is_file()
    (res / "summary.csv").unlink()
    p = run("figures", "msd", "--config", str(cfg_path))
    assert p.returncode == 2 and "table not found" in p.stderr and len(p.stderr.strip().splitlines()) == 1
