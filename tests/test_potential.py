"""superion.potential: legacy aggregation parity, self-check, resolution, element check, sanity.

Reference: ../shared/parity (matgl 2.2.1 DGL). Tolerances from issue 7: universal models
0.5 meV/atom and 0.01 eV/A; M3GNet-r2SCAN-NaBH 2 meV/atom and 0.05 eV/A.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from superion import potential as P  # noqa: E402
from superion.errors import SuperionError  # noqa: E402
from superion.provenance import software_versions  # noqa: E402

NABH = "M3GNet-r2SCAN-NaBH"
MP = "M3GNet-MP-2021.2.8-PES"
MODELS = [NABH, MP, "M3GNet-MatPES-PBE-v2025.1-PES", "M3GNet-MatPES-r2SCAN-v2025.1-PES"]
TOL = {NABH: (2.0, 0.05)}
UNIVERSAL_TOL = (0.5, 0.01)
STRESS_TOL_EV_A3 = 1e-3  # ~0.16 GPa; the opposite (GPa-convention) sign misses by >= 2e-3


@pytest.fixture(scope="module")
def parity(shared_dir):
    from ase.io import read

    d = shared_dir / "parity"
    results = json.loads((d / "reference.json").read_text())["results"]
    frames = {a.info["name"]: a for a in read(d / "structures.extxyz", ":")}
    return results, frames


def _residuals(lp, ref, atoms):
    e, f, s = lp.evaluate(atoms)
    de = 1000.0 * abs(e - ref["energy_eV"]) / len(atoms)
    df = float(np.abs(f - np.asarray(ref["forces_eV_A"])).max())
    ds = float(np.abs(s - np.asarray(ref["stress_eV_A3"])).max())
    return de, df, ds


@pytest.mark.parametrize("name", MODELS)
def test_parity_with_dgl_reference(name, parity, models_dir):
    results, frames = parity
    lp = P.load_potential(name)
    assert lp.legacy and lp.known_as == name
    assert lp.self_check_result is not None
    tol_e, tol_f = TOL.get(name, UNIVERSAL_TOL)
    refs = results[name]
    if name == NABH:  # the Na-B-H model only applies to Na-B-H structures
        assert set(refs) <= {"NaBH4", "Na2B12H12", "oNBH"}
    assert refs, f"no reference structures for {name}"
    for sname, ref in refs.items():
        de, df, ds = _residuals(lp, ref, frames[sname])
        assert de <= tol_e, f"{name}/{sname}: dE {de:.3f} meV/atom"
        assert df <= tol_f, f"{name}/{sname}: max|dF| {df:.4f} eV/A"
        assert ds <= STRESS_TOL_EV_A3, f"{name}/{sname}: max|dS| {ds:.2e} eV/A^3 (sign/unit?)"


@pytest.mark.parametrize("name", [NABH, MP])
def test_unpatched_source_aggregation_fails_parity(name, parity):
    """Current-matgl (source) aggregation on these checkpoints must miss the reference."""
    results, frames = parity
    bad = P.load_potential(name, legacy=False, self_check=False)
    assert not bad.legacy and not P.uses_legacy_aggregation(bad.potential)
    tol_e, tol_f = TOL.get(name, UNIVERSAL_TOL)
    misses = [_residuals(bad, ref, frames[s]) for s, ref in results[name].items()]
    assert all(de > 10 * tol_e or df > 10 * tol_f for de, df, _ in misses), misses
    # ... and the legacy instance of the same checkpoint is unaffected (per instance, no global patch).
    good = P.load_potential(name)
    assert good is not bad and P.uses_legacy_aggregation(good.potential)
    sname, ref = next(iter(results[name].items()))
    de, df, _ = _residuals(good, ref, frames[sname])
    assert de <= tol_e and df <= tol_f


def test_fresh_matgl_model_keeps_current_aggregation():
    from matgl.layers._graph_convolution import M3GNetGraphConv
    from matgl.models import M3GNet

    P.load_potential(NABH)  # a legacy model loaded in this process
    m = M3GNet(element_types=["H", "Li"])
    convs = [x for x in m.modules() if isinstance(x, M3GNetGraphConv)]
    assert convs and all(type(c) is M3GNetGraphConv for c in convs)
    assert not P.uses_legacy_aggregation(m)


def test_cache_same_object():
    a = P.load_potential(NABH, device="cpu")
    assert P.load_potential(NABH, device="auto" if not torch.cuda.is_available() else "cpu") is a
    assert P.load_potential(NABH, legacy=False, self_check=False) is not a


def test_self_check_trips_on_corrupted_fingerprint(monkeypatch):
    lp = P.load_potential(NABH)
    table = copy.deepcopy(P.known_models_table())
    entry = table["models"][NABH]
    entry["fingerprint"]["energy_eV"] += 0.1 * len(entry["fingerprint"]["forces_eV_A"])  # +100 meV/atom
    with pytest.raises(SuperionError, match=rf"{NABH}.*expected.*got") as exc:
        P.run_self_check(lp, entry)
    assert "\n" not in str(exc.value)
    # through load_potential too (the load is not cached on failure)
    P.clear_cache()
    monkeypatch.setattr(P.registry, "known_models_table", lambda: table)  # the one table every module reads
    with pytest.raises(SuperionError, match="self-check failed"):
        P.load_potential(NABH, device="cpu", legacy=True, self_check=True, models_dir=None)


def test_self_check_catches_wrong_aggregation(monkeypatch):
    """Forcing source aggregation on a known legacy checkpoint fails the load-time self-check."""
    with pytest.raises(SuperionError, match="self-check failed.*current aggregation"):
        P.load_potential(MP, legacy=False, self_check=True)


def test_check_elements():
    lp = P.load_potential(NABH)
    assert set(lp.element_types) == {"H", "B", "Na"}
    lp.check_elements(["Na", "B", "H", "H"])
    with pytest.raises(SuperionError) as exc:
        lp.check_elements(["Na", "Cl", "B", "S"])
    msg = str(exc.value)
    assert "Cl" in msg and "S" in msg and P.UNIVERSAL_MODEL in msg and "Na," not in msg
    with pytest.raises(SuperionError, match="Li"):
        P.get_calculator(NABH, symbols=["Li", "B", "H"])
    calc = P.get_calculator(MP, symbols=["Li", "B", "H"])
    assert calc is not None


def test_select_device():
    assert P.select_device("cpu") == "cpu"
    assert P.select_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(SuperionError, match="unknown device"):
        P.select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(SuperionError, match="CUDA"):
            P.select_device("cuda")
    with pytest.raises(SuperionError):
        P.set_threads(0)


def test_resolution_explicit_path_and_errors(models_dir, tmp_path):
    name, files, where = P.resolve_model(str(models_dir / NABH))
    assert where == "path" and name == NABH and files["state.pt"] == (models_dir / NABH / "state.pt").resolve()
    assert P.resolve_model(NABH)[2] == "models_dir"
    lp = P.load_potential(str(models_dir / NABH))
    assert lp.known_as == NABH and lp.legacy and lp.path == (models_dir / NABH).resolve()
    with pytest.raises(SuperionError, match="does not exist"):
        P.load_potential(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SuperionError, match="missing model.json"):
        P.load_potential(str(tmp_path / "empty"))


def test_unknown_name_fails_offline_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SuperionError, match=r"'No-Such-Model-xyz' not found.*searched") as exc:
        P.load_potential("No-Such-Model-xyz")
    # the message names the folder as resolved (a symlinked shared/ shows its target)
    assert str(Path(os.environ["SUPERION_MODELS"]).resolve()) in str(exc.value)


def test_cli_unknown_model_one_line_error(shared_dir):
    """Without HF_HUB_OFFLINE and no internet the CLI must still answer quickly, one line."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "SUPERION_OFFLINE")}
    env["SUPERION_SHARED"] = str(shared_dir)
    cmd = [sys.executable, "-m", "superion", "potential", "check", "No-Such-Model-xyz"]
    # a generous bound: resolution must not sit in huggingface retries/timeouts
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=10)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert "No-Such-Model-xyz" in err and "searched" in err


def _copy_model(models_dir: Path, dst: Path, name: str = NABH) -> Path:
    out = dst / "my-model"
    shutil.copytree(models_dir / name, out)
    for f in out.iterdir():
        f.chmod(0o644)
    return out


def test_unknown_checkpoint_defaults_to_current_with_warning(models_dir, tmp_path, parity):
    """Same weights, different file bytes: not in the table -> current aggregation, warning, no self-check."""
    out = _copy_model(models_dir, tmp_path)
    state = torch.load(out / "state.pt", weights_only=True, map_location="cpu")
    torch.save(dict(reversed(list(state.items()))), out / "state.pt")
    with pytest.warns(UserWarning, match="not a known checkpoint"):
        lp = P.load_potential(out)
    assert not lp.legacy and lp.known_as is None and lp.self_check_result is None
    # explicit override restores the trained behaviour
    lp2 = P.load_potential(out, legacy=True)
    results, frames = parity
    de, df, _ = _residuals(lp2, results[NABH]["NaBH4"], frames["NaBH4"])
    assert de <= 2.0 and df <= 0.05
    # model.json metadata naming an old matgl also selects legacy aggregation
    meta = json.loads((out / "model.json").read_text())
    meta["metadata"] = {"matgl_version": "2.2.1"}
    (out / "model.json").write_text(json.dumps(meta))
    P.clear_cache()
    assert P.load_potential(out).legacy


def test_calc_site_wise_checkpoint_loads_strictly(models_dir):
    """The NaBH checkpoint carries calc_site_wise; every stored weight must land in the model."""
    args = torch.load(models_dir / NABH / "model.pt", weights_only=True, map_location="cpu")
    assert "calc_site_wise" in args
    lp = P.load_potential(NABH)
    state = torch.load(models_dir / NABH / "state.pt", weights_only=True, map_location="cpu")
    own = lp.potential.state_dict()
    assert set(state) == set(own)
    for k, v in state.items():
        assert torch.equal(own[k].cpu(), v), k


def test_versions_pinned_and_recorded(repo_dir):
    verified = P.known_models_table()["verified_with"]
    installed = software_versions(P.PARITY_DISTRIBUTIONS, python=False)
    for key in ("matgl", "torch-geometric"):
        assert installed[key] == verified[key], f"{key} {installed[key]} is not the verified {verified[key]}"
    text = (repo_dir / "pyproject.toml").read_text()
    assert f'"matgl=={verified["matgl"]}"' in text
    assert f'"torch-geometric=={verified["torch-geometric"]}"' in text


# ------------------------------------------------- the M3GNet-r2SCAN-NaBH residual, explained
@pytest.mark.parametrize("name", [NABH, MP])
def test_exact_dgl_mode_reproduces_matgl_2_2_1(name, parity):
    """Legacy aggregation + matgl<=2.2's pruned-list three-body indexing = the DGL reference."""
    results, frames = parity
    lp = P.load_potential(name, exact_dgl=True)
    assert lp.exact_dgl and P.uses_exact_dgl(lp.potential)
    assert not P.uses_exact_dgl(P.load_potential(name).potential)  # default instance untouched
    for sname, ref in results[name].items():
        de, df, ds = _residuals(lp, ref, frames[sname])
        assert de <= 0.02 and df <= 1e-3 and ds <= 1e-5, (sname, de, df, ds)
    with pytest.raises(SuperionError, match="exact_dgl"):
        P.load_potential(name, legacy=False, exact_dgl=True, self_check=False)


def test_default_legacy_mode_is_conservative_exact_dgl_is_not(parity):
    """Energy change along a path must equal the work of the forces (trapezoid rule).

    The default legacy evaluation is smooth; the DGL-exact one jumps when a bond crosses the
    4 A three-body cutoff, which is why it is not the default for MD.
    """
    _, frames = parity
    a0 = frames["NaBH4"]
    direction = np.random.default_rng(0).normal(size=(len(a0), 3))
    direction /= np.linalg.norm(direction)
    steps = np.linspace(0.0, 0.6, 31)  # A, collective displacement
    worst = {}
    for exact in (False, True):
        lp = P.load_potential(NABH, exact_dgl=exact)
        es, fs = [], []
        for t in steps:
            b = a0.copy()
            b.positions += t * direction
            e, f, _ = lp.evaluate(b)
            es.append(e)
            fs.append(f)
        fs = np.asarray(fs)
        work = -((fs[1:] + fs[:-1]) / 2 * direction).sum(axis=(1, 2)) * (steps[1] - steps[0])
        worst[exact] = float(np.abs(np.diff(es) - work).max())
    assert worst[False] < 3e-4, worst  # eV per 0.02 A step: smooth
    assert worst[True] > 1e-3, worst  # a visible jump somewhere along the path


# ---------------------------------------------------------------------------- CLI
def test_cli_check_and_list(shared_dir, capsys, tmp_path):
    from superion.cli import main

    assert main(["potential", "check", NABH, "--reference", str(shared_dir / "parity"), "--device", "cpu",
                 "--json", str(tmp_path / "check.json")]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "oNBH" in out and "Li2S" not in out
    rows = json.loads((tmp_path / "check.json").read_text())["rows"]
    assert {r["structure"] for r in rows} == {"NaBH4", "Na2B12H12", "oNBH"} and all(r["ok"] for r in rows)
    # the unpatched evaluation is caught: non-zero exit, rows marked FAIL
    assert main(["potential", "check", MP, "--aggregation", "current",
                 "--reference", str(shared_dir / "parity")]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["potential", "check", NABH, "--reference", str(tmp_path)]) == 2
    assert "reference.json" in capsys.readouterr().err

    assert main(["potential", "list"]) == 0
    out = capsys.readouterr().out
    for name in MODELS:
        line = next(x for x in out.splitlines() if x.startswith(name))
        entry = P.known_models_table()["models"][name]
        assert "legacy" in line and entry["state_sha256"][:12] in line and "not found" not in line


# ---------------------------------------------------------------------------- registry
def test_known_elements_match_the_checkpoints():
    """The table's element sets (used by config validation) are the models' own element types."""
    assert P.registry.known_elements(NABH) == frozenset(P.load_potential(NABH).element_types) == {"H", "B", "Na"}
    assert P.registry.known_elements(MP) is None  # universal
    assert P.registry.known_elements("my-model") is None


def test_model_available_mirrors_resolution(models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    R = P.registry
    assert R.model_available(NABH) and R.model_available(str(models_dir / NABH))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.json").touch()
    assert not R.model_available(str(tmp_path / "half"))  # resolve_model refuses it too
    with pytest.raises(SuperionError, match="missing model.pt"):
        P.resolve_model(str(tmp_path / "half"))
    assert not R.model_available(str(tmp_path / "nope")) and not R.model_available("")
    # a name found only through models_dir
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "NaBH-alias").symlink_to(models_dir / NABH)
    assert not R.model_available("NaBH-alias")
    assert R.model_available("NaBH-alias", tmp_path / "models")
    assert P.resolve_model("NaBH-alias", tmp_path / "models")[1]["state.pt"] == tmp_path / "models" / "NaBH-alias" / "state.pt"
    assert R.default_models_dirs(tmp_path / "models")[0] == (tmp_path / "models").resolve()
    monkeypatch.setenv("MY_MODELS", str(tmp_path / "models"))
    assert R.default_models_dirs("$MY_MODELS")[0] == (tmp_path / "models").resolve()


def test_list_models_known_unknown_and_different_weights(models_dir, tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    other = _copy_model(models_dir, tmp_path)  # tmp_path/my-model: NaBH files, state.pt re-saved below
    state = torch.load(other / "state.pt", weights_only=True, map_location="cpu")
    torch.save(dict(reversed(list(state.items()))), other / "state.pt")
    (d / NABH).symlink_to(other)  # a known name with other bytes
    (tmp_path / "x").mkdir()
    (d / "extra").symlink_to(_copy_model(models_dir, tmp_path / "x"))  # a folder the table does not name
    (d / "not-a-model").mkdir()
    models, dirs = P.registry.list_models(d)
    assert dirs[0] == d.resolve()
    assert [m.name for m in models][:len(MODELS)] == P.known_model_names()
    by = {m.name: m for m in reversed(models)}  # first entry of a name wins (a shadowed folder follows)
    assert by[NABH].folder == d.resolve() / NABH and by[NABH].weights_differ
    assert by[NABH].sha256 == P.known_models_table()["models"][NABH]["state_sha256"] != by[NABH].found_sha256
    assert by[MP].folder == models_dir.resolve() / MP and not by[MP].weights_differ
    assert by["extra"].aggregation == "unknown" and not by["extra"].known
    assert by["extra"].sha256 == P.known_models_table()["models"][NABH]["state_sha256"]  # the file's own
    assert "not-a-model" not in by


def test_config_validation_uses_the_registry(models_dir, tmp_path, monkeypatch):
    """A config names a potential by a name only its models_dir holds: valid with it, not without."""
    from superion.workflow import config as sc

    monkeypatch.delenv("SUPERION_MODELS", raising=False)
    monkeypatch.delenv("SUPERION_SHARED", raising=False)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "NaBH-alias").symlink_to(models_dir / NABH)
    (tmp_path / "models" / "empty").mkdir()
    cfg = {"name": "t", "temperatures_K": [600], "mass_settings": {"ref": {}},
           "systems": {"a": {"structure": "x.cif", "potential": "NaBH-alias", "mobile_species": "Na"}}}
    with pytest.raises(SuperionError, match="unknown potential 'NaBH-alias'"):
        sc.validate_config(cfg, check_files=False)
    cfg["models_dir"] = str(tmp_path / "models")
    assert sc.validate_config(cfg, check_files=False)["models_dir"] == str(tmp_path / "models")
    assert sc.models_dirs(cfg)[0] == (tmp_path / "models").resolve()
    cfg["systems"]["a"]["potential"] = "empty"  # a folder without model files is not a potential
    with pytest.raises(SuperionError, match="unknown potential 'empty'"):
        sc.validate_config(cfg, check_files=False)
    # element coverage comes from the same table
    (tmp_path / "li.xyz").write_text("1\n\nLi 0 0 0\n")
    cfg["systems"]["a"].update(potential=NABH, structure="li.xyz")
    with pytest.raises(SuperionError, match="does not cover element.*Li"):
        sc.validate_config(cfg, base_dir=tmp_path)


# ---------------------------------------------------------------- models_dir through the rules
def _shell_commands(text: str, rule: str) -> list[list[str]]:
    """argv (without the log redirect) of each `superion <rule>` command in a dry-run listing."""
    import shlex

    out = []
    for line in text.splitlines():
        if line.startswith("Shell command:"):
            argv = shlex.split(line.split(":", 1)[1])
            argv = argv[:next((i for i, a in enumerate(argv) if a in (">", ">>")), len(argv))]
            if argv[1:2] == [rule]:
                out.append(argv[1:])
    return out


def test_config_models_dir_reaches_relax_and_md(models_dir, repo_dir, tmp_path, monkeypatch, capsys):
    """With SUPERION_MODELS unset, a config's models_dir is the only way to the model: the rules
    pass it as --models-dir, and the generated relax/md commands (run here) resolve the model."""
    import yaml

    from superion.cli import main

    alias = "NaBH-alias"  # not in ../shared/models, so only models_dir can resolve it
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / alias).symlink_to(models_dir / NABH)
    (tmp_path / "structures").symlink_to(repo_dir / "structures")
    cfg = yaml.safe_load((repo_dir / "configs" / "smoke.yaml").read_text())
    cfg["models_dir"] = str(tmp_path / "models")
    cfg["systems"]["NaBH4"]["potential"] = alias
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if k not in ("SUPERION_MODELS", "SUPERION_SHARED")}
    env["HF_HUB_OFFLINE"] = "1"
    snakemake = Path(sys.executable).parent / "snakemake"
    r = subprocess.run([str(snakemake), "--snakefile", str(repo_dir / "Snakefile"), "--directory", str(tmp_path),
                        "-n", "-p", "--cores", "1", "--configfile", "c.yaml"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    relax, md = _shell_commands(r.stdout, "relax"), _shell_commands(r.stdout, "md")
    assert len(relax) == 1 and len(md) == 4
    for argv in relax + md:
        i = argv.index("--models-dir")
        assert argv[i + 1] == str(tmp_path / "models") and argv[argv.index("--potential") + 1] == alias

    monkeypatch.delenv("SUPERION_MODELS", raising=False)
    monkeypatch.delenv("SUPERION_SHARED", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SuperionError, match=f"'{alias}' not found"):
        P.resolve_model(alias)
    # the relax command as generated, on the cubic NaBH4 cell instead of the not-yet-prepared input
    argv = relax[0]
    argv[1] = str(repo_dir / "structures" / "NaBH4_F-43m.cif")
    argv[argv.index("--out") + 1] = str(tmp_path / "relaxed.extxyz")
    argv[argv.index("--max-steps") + 1] = "1"
    assert main(argv) == 0
    rep = json.loads((tmp_path / "relaxed.json").read_text())
    assert rep["potential"]["known_as"] == NABH and rep["potential"]["path"] == str(models_dir.resolve() / NABH)
    # one MD command as generated, on that structure
    argv = next(a for a in md if "--mass-scale" not in a)
    argv[1] = str(tmp_path / "relaxed.extxyz")
    argv[argv.index("--out") + 1] = str(tmp_path / "run")
    assert main(argv) == 0
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert meta["potential"]["requested"] == alias and meta["potential"]["known_as"] == NABH
    capsys.readouterr()


def test_models_dir_flags_of_prepare_build_and_check(models_dir, repo_dir, tmp_path, monkeypatch):
    """prepare, build and potential check pass --models-dir on to the model lookup."""
    from superion.cli import main

    monkeypatch.delenv("SUPERION_MODELS", raising=False)
    monkeypatch.delenv("SUPERION_SHARED", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    d = tmp_path / "models"
    d.mkdir()
    (d / "NaBH-alias").symlink_to(models_dir / NABH)
    out = tmp_path / "p.extxyz"
    assert main(["prepare", str(repo_dir / "structures" / "NaBH4_F-43m.cif"), "--out", str(out), "--supercell", "1", "1", "1",
                 "--potential", "NaBH-alias", "--models-dir", str(d), "--device", "cpu"]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["potential"]["known_as"] == NABH
    assert main(["prepare", str(repo_dir / "structures" / "NaBH4_F-43m.cif"), "--out", str(out), "--supercell", "1", "1", "1",
                 "--potential", "NaBH-alias", "--device", "cpu"]) == 2  # not found without it

    seen = {}

    def fake_get_calculator(name, **kw):  # stop the build where it asks for its potential
        seen.update(kw, name=name, files=P.resolve_model(name, kw.get("models_dir"))[1])
        raise SuperionError("stop here")

    import superion.potential

    monkeypatch.setattr(superion.potential, "get_calculator", fake_get_calculator)
    recipe = tmp_path / "r.yaml"
    recipe.write_text((repo_dir / "structures" / "recipes" / "NaBH4_P42nmc.yaml").read_text()
                      .replace("potential: M3GNet-r2SCAN-NaBH", "potential: NaBH-alias"))
    assert "NaBH-alias" in recipe.read_text()
    assert main(["build", str(recipe), "--out", str(tmp_path / "b.cif"), "--models-dir", str(d)]) == 2
    assert seen["name"] == "NaBH-alias" and seen["models_dir"] == str(d)
    assert seen["files"]["state.pt"] == d / "NaBH-alias" / "state.pt"

    assert main(["potential", "check", "NaBH-alias", "--models-dir", str(d), "--device", "cpu",
                 "--reference", str(models_dir.parent / "parity")]) == 0


def test_parity_report_and_default_tolerance(tmp_path):
    from types import SimpleNamespace

    from superion.potential import parity

    lp = SimpleNamespace(name="m", known_as=None, legacy=False, sha256="ab")
    assert parity.tolerance_for(lp) == {"energy_meV_atom": 0.5, "forces_eV_A": 0.01}
    assert parity.tolerance_for(SimpleNamespace(known_as=NABH)) == {"energy_meV_atom": 2.0, "forces_eV_A": 0.05}
    rep = P.ParityReport(lp, tmp_path, "m", parity.tolerance_for(lp), [{"structure": "a", "ok": True}])
    assert rep.ok and rep.to_dict()["pass"] and rep.to_dict()["rows"] == [{"structure": "a", "ok": True}]
    rep.rows.append({"structure": "b", "ok": False})
    assert not rep.ok and not rep.to_dict()["pass"]
    with pytest.raises(SuperionError, match="lacks reference.json"):
        P.check_parity(NABH, reference=tmp_path)
