"""Workflow config validation: shipped configs validate; each kind of bad config gives one clear line."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from superion.workflow import config as sc
from superion.errors import SuperionError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def test_all_shipped_configs_exist():
    names = {p.stem for p in CONFIGS}
    assert {"default", "smoke", "paper", "argyrodite", "closo"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_validates(path, monkeypatch):
    monkeypatch.chdir(REPO)  # structure paths are relative to the working directory
    cfg = sc.load_config(path)
    assert cfg["name"] == path.stem
    assert sc.runs(cfg), "a config must produce at least one MD run"
    for system in sc.selected_systems(cfg):
        st = sc.md_steps(cfg, system)
        assert st["steps"] >= 1 and st["save_every"] >= 1
        assert Path(cfg["systems"][system]["structure"]).is_file()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_snakemake_validate_accepts_shipped_config(path):
    from snakemake.utils import validate

    data = yaml.safe_load(path.read_text())
    validate(data, schema=str(sc.SCHEMA_PATH))  # raises WorkflowError if the schema rejects it
    assert data["md"]["timestep_fs"] > 0  # defaults filled in by the same schema


def test_defaults_filled_from_schema():
    cfg = sc.validate_config(_base(), check_files=False)
    assert cfg["md"]["ensemble"] == "npt"
    assert cfg["analysis"]["active_threshold_A2"] == 21.0
    assert cfg["device"] == "auto" and cfg["threads"] == 1 and cfg["seeds"] == [1]
    assert cfg["mass_settings"] == {"ref": {}}
    # system overrides carry no defaults: the global value stays in force
    assert sc.system_section(cfg, "a", "md")["production_ps"] == cfg["md"]["production_ps"]


def test_default_config_budget(monkeypatch):
    """default.yaml: within the ~20 min CPU budget, and shaped to resolve the o-NBH/NaBH4 contrast:
    both systems at one common temperature, each production long enough for an MSD at a 1 ps lag
    with half the run as origins, isotropic NPT (the unit cell's shape wanders under anisotropic NPT)."""
    monkeypatch.chdir(REPO)
    cfg = sc.load_config(REPO / "configs" / "default.yaml")
    cost = sc.estimate_cost(cfg)
    assert cost["complete"]
    assert cost["atom_steps"] <= 0.8e6
    systems = sc.selected_systems(cfg)
    assert {"oNBH", "NaBH4"} <= set(systems)
    common = set.intersection(*(set(sc.system_temperatures(cfg, s)) for s in ("oNBH", "NaBH4")))
    assert common
    for s in ("oNBH", "NaBH4"):
        md = sc.system_section(cfg, s, "md")
        assert md["production_ps"] >= 2.0 and md["ensemble"] == "npt_iso"  # MSD at a 1 ps lag with half the run as origins


def _base():
    return {
        "temperatures_K": [600, 700],
        "systems": {"a": {"structure": "x.cif", "potential": "M3GNet-r2SCAN-NaBH", "mobile_species": "Na"}},
    }


def _set(path, value):
    def mod(cfg):
        node = cfg
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return mod


BAD = {
    "wrong_key": (_set(["tempratures_K"], [600]), ["unknown key", "tempratures_K"]),
    "wrong_key_nested": (_set(["md", "timestep"], 1.0), ["md", "unknown key", "timestep"]),
    "wrong_key_system": (_set(["systems", "a", "potentail"], "x"), ["systems.a", "potentail"]),
    "wrong_type": (_set(["md", "timestep_fs"], "1 fs"), ["md.timestep_fs", "not of type"]),
    "wrong_type_ladder": (_set(["temperatures_K"], "600"), ["temperatures_K", "not of type"]),
    "empty_ladder": (_set(["temperatures_K"], []), ["temperatures_K", "empty"]),
    "negative_temperature": (_set(["temperatures_K"], [600, -300]), ["temperatures_K[1]", "-300", "> 0 K"]),
    "zero_temperature_system": (_set(["systems", "a", "temperatures_K"], [0]), ["systems.a.temperatures_K[0]", "> 0 K"]),
    "unknown_system": (_set(["run_systems"], ["b"]), ["run_systems", "unknown system 'b'"]),
    "unknown_mass_setting": (_set(["systems", "a", "mass_settings"], ["heavy"]), ["unknown mass setting 'heavy'"]),
    "unknown_cluster": (_set(["mass_settings"], {"ref": {}, "x": {"B13H13": 2}}), ["unknown cluster type 'B13H13'"]),
    "unknown_potential": (_set(["systems", "a", "potential"], "M3GNet-nonexistent"), ["unknown potential 'M3GNet-nonexistent'"]),
    "supercell_and_width": (_set(["systems", "a", "min_width_A"], 10.0), ["either supercell or min_width_A"]),
    "bad_save_interval": (_set(["md", "save_every_fs"], 1.5), ["save_every_fs", "multiple"]),
    "bad_normalization": (_set(["analysis", "active_normalization"], "all"), ["active_normalization"]),
    "no_systems": (_set(["systems"], {}), ["systems", "empty"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_one_clear_line(case):
    mod, needles = BAD[case]
    cfg = _base()
    if case == "supercell_and_width":
        cfg["systems"]["a"]["supercell"] = [1, 1, 1]
    mod(cfg)
    with pytest.raises(SuperionError) as info:
        sc.validate_config(cfg, source="bad.yaml", check_files=False)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("config bad.yaml: ")
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_bad_configs_rejected_by_snakemake_schema_too():
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    for case in ("wrong_key", "wrong_type", "empty_ladder", "negative_temperature"):
        cfg = _base()
        BAD[case][0](cfg)
        with pytest.raises(WorkflowError):
            validate(cfg, schema=str(sc.SCHEMA_PATH))


def test_missing_structure_file(tmp_path):
    cfg = _base()
    with pytest.raises(SuperionError, match="structure: file not found: x.cif"):
        sc.validate_config(cfg, base_dir=tmp_path)


def test_potential_element_coverage(tmp_path):
    (tmp_path / "li.cif").write_text(
        "data_x\n_cell_length_a 5\n_cell_length_b 5\n_cell_length_c 5\n_cell_angle_alpha 90\n"
        "_cell_angle_beta 90\n_cell_angle_gamma 90\nloop_\n _atom_site_type_symbol\n _atom_site_label\n"
        " _atom_site_fract_x\n _atom_site_fract_y\n _atom_site_fract_z\n  Li Li1 0 0 0\n  S S1 0.5 0.5 0.5\n"
    )
    cfg = _base()
    cfg["systems"]["a"].update(structure="li.cif", mobile_species="Li")
    with pytest.raises(SuperionError, match="does not cover element"):
        sc.validate_config(cfg, base_dir=tmp_path)
    cfg["systems"]["a"]["potential"] = "M3GNet-MatPES-r2SCAN-v2025.1-PES"
    sc.validate_config(cfg, base_dir=tmp_path)


def test_potential_from_models_dir(tmp_path):
    (tmp_path / "my-model").mkdir()
    for f in ("model.json", "model.pt", "state.pt"):  # what the registry resolves as a model folder
        (tmp_path / "my-model" / f).touch()
    cfg = _base()
    cfg["systems"]["a"]["potential"] = "my-model"
    with pytest.raises(SuperionError, match="unknown potential"):
        sc.validate_config(cfg, check_files=False)
    cfg["models_dir"] = str(tmp_path)
    sc.validate_config(cfg, check_files=False)


def test_runs_and_layout():
    cfg = _base()
    cfg["mass_settings"] = {"ref": {}, "B12H12x10": {"B12H12": 10}, "both5": {"B12H12": 5, "BH4": 5}}
    cfg["seeds"] = [1, 2]
    cfg["systems"]["a"]["mass_settings"] = ["ref", "B12H12x10", "both5"]
    cfg["systems"]["b"] = dict(cfg["systems"]["a"], temperatures_K=[612.5])
    del cfg["systems"]["b"]["mass_settings"]
    cfg = sc.validate_config(cfg, check_files=False)
    runs = sc.runs(cfg)
    assert len(runs) == 3 * 2 * 2 + 1 * 1 * 2
    assert sc.system_mass_settings(cfg, "b") == ["ref"]
    assert sc.mass_series(cfg, "B12H12x10") == ("B12H12", 10.0)
    assert sc.mass_series(cfg, "both5") == ("B12H12+BH4", 5.0)
    assert sc.mass_series(cfg, "ref") == ("ref", 1.0)
    assert sc.mass_scale_args(cfg, "both5") == ["B12H12=5", "BH4=5"]
    b = [r for r in runs if r.system == "b"][0]
    assert sc.run_dir(cfg, b).as_posix() == "results/config/runs/b/ref/T612.5K/seed1"
    assert sc.temp_tag(600.0) == "600"


def test_md_steps_units():
    cfg = _base()
    cfg["md"] = {"timestep_fs": 2.0, "production_ps": 1.0, "equilibration_ps": 0.5, "save_every_fs": 10.0}
    cfg = sc.validate_config(cfg, check_files=False)
    assert sc.md_steps(cfg, "a") == {"steps": 500, "equilibration_steps": 250, "save_every": 5}


def test_cli_validate_bad_config_exit_code(tmp_path):
    bad = _base()
    bad["temperatures_K"] = []
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    proc = subprocess.run([sys.executable, "-m", "superion", "config", "validate", "--no-files", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "temperatures_K: must not be empty" in lines[0]


def test_load_config_yaml_errors(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("systems: [\n")
    with pytest.raises(SuperionError, match="cannot parse"):
        sc.load_config(p)
    with pytest.raises(SuperionError, match="not found"):
        sc.load_config(tmp_path / "nope.yaml")
    q = tmp_path / "list.yaml"
    q.write_text("- 1\n- 2\n")
    with pytest.raises(SuperionError, match="mapping"):
        sc.load_config(q)


def test_validate_does_not_mutate_input():
    cfg = _base()
    before = copy.deepcopy(cfg)
    sc.validate_config(cfg, check_files=False)
    assert cfg == before


def test_md_batches(monkeypatch):
    """md_batch splits each (system, mass setting)'s runs into jobs of nearly equal size."""
    cfg = _base()
    cfg["temperatures_K"] = [300, 325, 350, 375, 400, 425, 450, 475, 500, 550, 600, 700, 800]
    cfg = sc.validate_config(cfg, check_files=False)
    assert "md_batch" not in cfg and sc.md_batches(cfg) == [] and sc.md_batch_size(cfg, "a") is None  # absent: off
    for off in (False, "off"):
        assert sc.md_batches(dict(cfg, md_batch=off)) == []
    batches = sc.md_batches(sc.validate_config(dict(cfg, md_batch=5), check_files=False))
    assert [len(b.runs) for b in batches] == [5, 4, 4]  # 13 runs, at most 5 per job
    assert [r for b in batches for r in b.runs] == sc.runs(cfg)  # every run once, in order
    assert {(b.system, b.mass) for b in batches} == {("a", "ref")} and [b.index for b in batches] == [0, 1, 2]
    # auto: 0.8 x 16 GB / (1.5 MB/atom x atoms), at most 32
    auto = sc.validate_config(dict(cfg, md_batch="auto", gpu_memory_GB=16), check_files=False)
    for atoms, expect in ((1024, 8), (128, 32), (20000, 1)):
        monkeypatch.setattr(sc, "_estimate_atoms", lambda c, s, n=atoms: n)
        assert sc.md_batch_size(auto, "a") == expect
    assert sc.md_batch_size(dict(auto, md_batch=True), "a") == sc.md_batch_size(auto, "a")
    for bad in (0, -2, "sometimes", 2.5):
        with pytest.raises(SuperionError, match="md_batch"):
            sc.validate_config(dict(cfg, md_batch=bad), check_files=False)
