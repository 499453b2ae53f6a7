"""Equilibration check (analysis.equilibration) on two measured o-NBH 800 K runs and on synthetic logs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from superion.analysis.equilibration import (check_equilibration, equilibration_verdict, equilibration_warnings,
                                             short_verdict, write_equilibration)
from superion.cli import main
from superion.md.storage import read_thermo

DATA = Path(__file__).parent / "data"
ANISO = DATA / "thermo_oNBH_800K_aniso.csv"  # MTK anisotropic NPT, 20 ps production
ISO = DATA / "thermo_oNBH_800K_iso.csv"      # MTK isotropic NPT, 12 ps production


def _log(t_ps, V, lengths=None, T=800.0, eq_ps=1.0):
    """Thermo columns of a synthetic run (``eq_ps`` of equilibration first)."""
    t_ps = np.asarray(t_ps, float)
    L = np.cbrt(V)[:, None] * np.ones(3) if lengths is None else np.asarray(lengths)
    return {"time_fs": t_ps * 1000, "phase": np.where(t_ps < eq_ps, "equilibration", "production"),
            "T_K": np.full_like(t_ps, T), "P_bar": np.zeros_like(t_ps), "volume_A3": np.asarray(V, float),
            "a_A": L[:, 0], "b_A": L[:, 1], "c_A": L[:, 2]}


def test_anisotropic_800K_run_is_drifting_because_its_cell_changes_shape():
    r = check_equilibration(read_thermo(ANISO), target_T_K=800)
    assert r["verdict"] == "drifting"
    wander = {f["quantity"] for f in r["flags"] if f["kind"] == "wander"}
    assert {"a", "b"} <= wander  # b block means 22.4-27.5 Å: the shape wanders, V does not drift
    assert r["quantities"]["b_A"]["relative_block_range"] > 0.15
    assert abs(r["quantities"]["volume_A3"]["relative_drift"]) < 0.03
    assert r["equilibrated_after_ps"] is None  # never settles within 20 ps
    assert "wander" in short_verdict(r)


def test_isotropic_800K_run_keeps_its_shape_and_settles_after_its_first_ps_of_production():
    thermo = read_thermo(ISO)
    r = check_equilibration(thermo, target_T_K=800)
    assert not [f for f in r["flags"] if f["kind"] == "wander"]
    assert r["quantities"]["b_A"]["relative_block_range"] < 0.03
    # V still grows by ~4 % (1357 -> ~1425 Å^3) in the first ps of production (1 ps equilibration)
    assert [f["quantity"] for f in r["flags"]] == ["V"]
    assert 1.5 < r["equilibrated_after_ps"] < 4.0
    # the same run with a 3 ps equilibration passes
    late = dict(thermo, phase=np.where(thermo["time_fs"] < 3000, "equilibration", "production"))
    r3 = check_equilibration(late, target_T_K=800)
    assert r3["verdict"] == "equilibrated", r3["reasons"]
    assert abs(r3["temperature"]["relative_offset"]) < 0.02


def test_noisy_but_flat_volume_is_not_flagged_and_a_steady_growth_is():
    rng = np.random.default_rng(1)
    t = np.arange(0, 11, 0.005)
    noisy = 1400 * (1 + 0.03 * rng.standard_normal(len(t)))  # 3 % white noise, no drift
    assert check_equilibration(_log(t, noisy))["verdict"] == "equilibrated"
    grow = noisy * (1 + 0.01 * t)  # +10 % over the production
    r = check_equilibration(_log(t, grow))
    assert r["verdict"] == "drifting" and r["flags"][0]["quantity"] == "V"
    assert 0.08 < r["quantities"]["volume_A3"]["relative_drift"] < 0.12


def test_short_production_is_too_short_unless_the_drift_is_huge():
    t = np.arange(0, 1.9, 0.005)  # 0.9 ps production, the old default's
    flat = check_equilibration(_log(t, np.full(len(t), 1400.0)))
    assert flat["verdict"] == "too short to judge"
    grown = check_equilibration(_log(t, 1400 * (1 + 0.2 * np.clip(t - 1, 0, None) / 0.9)))  # +20 %
    assert grown["verdict"] == "drifting" and "short run" in grown["reasons"][0]


def test_nvt_and_temperature_warnings():
    t = np.arange(0, 6, 0.01)
    r = check_equilibration(_log(t, np.full(len(t), 1400.0), T=700.0), target_T_K=800)
    assert r["verdict"] == "equilibrated"
    assert any("NVT" in n for n in r["notes"]) and any("off the target" in w for w in r["warnings"])


def test_cli_writes_json_and_the_table_warning(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(ANISO, run / "thermo.csv")
    (run / "metadata.json").write_text(json.dumps({"settings": {"temperature_K": 800.0, "ensemble": "npt"}}))
    out = tmp_path / "analysis" / "equilibration.json"
    assert main(["analyze", "equilibration", str(run), "--json", str(out)]) == 0
    assert "drifting" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["verdict"] == "drifting" and data["ensemble"] == "npt" and data["thresholds"]["volume_drift_max"] == 0.03
    warn = equilibration_warnings(out.parent)
    assert warn and warn[0].startswith("NOT EQUILIBRIUM DATA")
    assert equilibration_verdict(out.parent) == "drifting (a, b, c wander)"
    assert equilibration_warnings(tmp_path) == [] and equilibration_verdict(tmp_path) is None  # not checked
    # a looser threshold is recorded and used
    r = write_equilibration(run, tmp_path / "loose.json", thresholds={"length_wander_max": 0.5})
    assert r["verdict"] == "equilibrated" and r["thresholds"]["length_wander_max"] == 0.5


def test_cli_user_errors(tmp_path, capsys):
    assert main(["analyze", "equilibration", str(tmp_path), "--json", str(tmp_path / "x.json")]) == 2
    assert "no thermo log" in capsys.readouterr().err
    shutil.copy(ISO, tmp_path / "thermo.csv")
    assert main(["analyze", "equilibration", str(tmp_path), "--json", str(tmp_path / "x.json"),
                 "--threshold", "volume_drift=0.1"]) == 2
    assert "unknown equilibration threshold" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["analyze", "equilibration", str(tmp_path)])  # --json missing


def test_isotropic_barostat_ringing_is_not_shape_wander():
    """Under isotropic NPT the lengths breathe with V (a ±5 % ringing, period 0.5 ps): no shape
    change, not flagged; the same lengths with one of them stretching alone is a shape wander."""
    from superion.analysis.equilibration import check_equilibration

    t_fs = np.arange(0, 3000, 5.0)
    V = 1400.0 * (1 + 0.05 * np.sin(2 * np.pi * t_fs / 500.0))
    L = np.cbrt(V)
    base = {"time_fs": t_fs, "phase": np.array(["equilibration"] * 60 + ["production"] * (len(t_fs) - 60)),
            "T_K": np.full(len(t_fs), 800.0), "volume_A3": V, "a_A": L, "b_A": 2.7 * L, "c_A": L}
    assert check_equilibration(base, target_T_K=800.0)["verdict"] == "equilibrated"
    stretch = 1 + 0.15 * np.clip((t_fs - 1000) / 1000, 0, 1) * np.clip((2600 - t_fs) / 600, 0, 1)
    wandering = dict(base, b_A=2.7 * L * stretch, a_A=L / np.sqrt(stretch), c_A=L / np.sqrt(stretch))
    res = check_equilibration(wandering, target_T_K=800.0)
    assert res["verdict"] == "drifting" and any(f["kind"] == "wander" and f["quantity"] == "b" for f in res["flags"])
