"""Batched replica MD (``run_md_batch`` / ``superion md-batch``): each replica is the single run.

Fast tests give every replica its own ASE EMT calculator (32 Cu atoms, ``calculators=``): the
lockstep machinery then changes no arithmetic, so replica and ``run_md`` must agree bitwise
(files compared byte for byte, timestamps and wall times aside). The M3GNet tests batch the
real model, where forces agree to float32 rounding only (see superion.potential.batch).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import kill_when_rows

from superion.errors import SimulationError, SuperionError
from superion.md import MDSettings, run_md
from superion.md.batch import batch_replicas, locked_replicas, mass_label, parse_mass_settings, run_md_batch
from test_md_resume import EMT, _consecutive, _same_run

NABH4 = "structures/approximants/NaBH4_P-421c-approx.cif"
MODEL = "M3GNet-r2SCAN-NaBH"
# Differ between two runs of the same thing: when and how fast it ran.
TIMESTAMPS = {"started_utc", "finished_utc", "resumed_utc", "wall_s", "steps_per_s"}


def quiet(*_a):
    pass


def _same_files(single: Path, replica: Path) -> None:
    """Same file names; thermo/trajectory bitwise; JSON files equal but for timestamps."""
    assert sorted(p.name for p in single.iterdir()) == sorted(p.name for p in replica.iterdir())
    _same_run(single, replica)
    for name in ("metadata.json", "complete.json"):
        a, b = (json.loads((d / name).read_text()) for d in (single, replica))
        assert a.keys() == b.keys()
        assert {k: v for k, v in a.items() if k not in TIMESTAMPS} == {k: v for k, v in b.items() if k not in TIMESTAMPS}
    a, b = (np.load(d / "checkpoint.npz") for d in (single, replica))
    assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)


@pytest.mark.parametrize("ensemble", ["npt", "nvt"])
def test_replicas_equal_single_runs_after_1000_steps(cu_file, tmp_path, ensemble):
    base = MDSettings(temperature_K=300, steps=900, equilibration_steps=100, ensemble=ensemble, timestep_fs=2.0,
                      save_every=50, checkpoint_every=250, seed=1, trajectory_dtype="float64", save_velocities=True)
    replicas = batch_replicas(tmp_path / "batch", base, [400, 700, 1000], seeds=[1, 2, 3])
    res = run_md_batch(cu_file, replicas, calculators=[EMT() for _ in replicas], log=quiet)
    assert not res.failed
    assert res.model_calls == base.total_steps + 1 and res.largest_batch == 3  # one call per step for all
    for r in replicas:
        single = tmp_path / "single" / r.out_dir.name
        run_md(cu_file, single, r.settings, calculator=EMT(), log=quiet)
        _same_files(single, r.out_dir)
    names = sorted(p.name for p in (tmp_path / "batch").iterdir())
    assert names == ["T1000K_ref_seed3", "T400K_ref_seed1", "T700K_ref_seed2"]


@pytest.mark.parametrize("ensemble", ["npt_iso", "nve"])
def test_replicas_equal_single_runs_other_ensembles(cu_file, tmp_path, ensemble):
    """Isotropic MTK and velocity Verlet: bitwise the single runs too (shorter: the same machinery)."""
    base = MDSettings(temperature_K=300, steps=150, equilibration_steps=50, ensemble=ensemble, timestep_fs=2.0,
                      save_every=25, checkpoint_every=50, seed=1, trajectory_dtype="float64", save_velocities=True)
    replicas = batch_replicas(tmp_path / "batch", base, [400, 900], seeds=[1, 2])
    res = run_md_batch(cu_file, replicas, calculators=[EMT() for _ in replicas], log=quiet)
    assert not res.failed and res.model_calls == base.total_steps + 1
    for r in replicas:
        single = tmp_path / "single" / r.out_dir.name
        run_md(cu_file, single, r.settings, calculator=EMT(), log=quiet)
        _same_files(single, r.out_dir)


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from superion.locks import run_dir_lock
with run_dir_lock(sys.argv[1]):
    Path(sys.argv[2]).write_text("locked")
    time.sleep(float(sys.argv[3]))
"""


def test_batch_takes_the_run_dir_lock(tmp_path, capfd):
    """md-batch takes superion md's run-directory lock on every replica: a replica held by another
    process (e.g. a `superion md` still running after Snakemake was killed) fails the batch at once,
    naming the holder, or with wait_s (the workflow's --wait-for-lock) is waited for."""
    reps = batch_replicas(tmp_path / "b", MDSettings(temperature_K=300, steps=10, save_every=5), [300, 400, 500])
    flag = tmp_path / "flag"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(reps[1].out_dir), str(flag), "3"],
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        deadline = time.time() + 60
        while not flag.exists() and time.time() < deadline:
            time.sleep(0.01)
        with pytest.raises(SuperionError, match=f"in use by another superion md \\(pid {holder.pid}"):
            with locked_replicas(reps):
                pass
        t0 = time.monotonic()
        with locked_replicas(reps, wait_s=60):
            waited = time.monotonic() - t0
            assert all((r.out_dir / ".superion-md.lock").exists() for r in reps)
    finally:
        holder.wait()
    assert waited > 0.5 and "waiting for it" in capfd.readouterr().err


def test_failing_replica_fails_alone(cu_file, tmp_path):
    """One replica's forces turn NaN: the guard marks it failed; the others finish as single runs."""

    class Exploding(EMT):
        def calculate(self, atoms=None, properties=("energy",), system_changes=None):
            super().calculate(atoms, properties, system_changes)  # counts self.calls
            if self.calls > 37:  # call 1 is step 0: NaN from step 37 on
                self.results["forces"] = self.results["forces"] * np.nan

    class Crashing(EMT):
        def calculate(self, atoms=None, properties=("energy",), system_changes=None):
            if self.calls >= 23:
                raise RuntimeError("model crashed")
            super().calculate(atoms, properties, system_changes)

    base = MDSettings(temperature_K=500, steps=60, ensemble="npt", timestep_fs=2.0, save_every=5,
                      checkpoint_every=10, seed=4)
    replicas = batch_replicas(tmp_path, base, [400, 500, 600, 700], seeds=[1, 2, 3, 4])
    calcs = [EMT(), Exploding(), EMT(), Crashing()]
    res = run_md_batch(cu_file, replicas, calculators=calcs, log=quiet)
    assert [type(x).__name__ for x in res.results] == ["RunResult", "SimulationError", "RunResult", "RuntimeError"]
    meta = json.loads((replicas[1].out_dir / "metadata.json").read_text())
    assert meta["status"] == "failed" and meta["failed_step"] == 37 and "became NaN" in meta["message"]
    assert json.loads((replicas[3].out_dir / "metadata.json").read_text())["status"] == "interrupted"
    assert not (replicas[1].out_dir / "complete.json").exists() and not (replicas[3].out_dir / "complete.json").exists()
    for k in (0, 2):
        single = tmp_path / "single" / replicas[k].out_dir.name
        run_md(cu_file, single, replicas[k].settings, calculator=EMT(), log=quiet)
        _same_files(single, replicas[k].out_dir)
    with pytest.raises(RuntimeError, match="model crashed"):
        res.raise_failures()  # a non-simulation error is re-raised as itself
    res.results[3] = res.results[0]  # without the crash, the guard failure alone -> one SimulationError
    with pytest.raises(SimulationError, match="1 of 4 replicas failed"):
        res.raise_failures()


SCRIPT = """
import sys
sys.path.insert(0, {here!r})
from test_md_resume import EMT
from superion.md import MDSettings
from superion.md.batch import batch_replicas, run_md_batch
reps = batch_replicas(sys.argv[2], MDSettings(**{settings!r}), [400, 600, 800], seeds=[1, 2, 3])
run_md_batch(sys.argv[1], reps, calculators=[EMT() for _ in reps], log=lambda *a: None)
"""


def test_sigkill_batch_and_resume_is_bitwise(cu_file, tmp_path):
    settings = dict(temperature_K=300, steps=200, equilibration_steps=40, ensemble="npt", timestep_fs=2.0,
                    save_every=5, checkpoint_every=20, seed=5, save_velocities=True, trajectory_dtype="float64")
    base = MDSettings(**settings)
    killed = tmp_path / "killed"
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(settings=settings, here=os.path.dirname(__file__)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    kills = 0
    watch = killed / "T800K_ref_seed3" / "thermo.csv"
    for target_rows in (8, 9, 25):
        kills += kill_when_rows([sys.executable, str(script), str(cu_file), str(killed)], env, watch, target_rows)
    assert kills >= 2, "the batch finished before it could be killed; make it longer"
    assert subprocess.run([sys.executable, str(script), str(cu_file), str(killed)], env=env).returncode == 0
    for r in batch_replicas(killed, base, [400, 600, 800], seeds=[1, 2, 3]):
        single = tmp_path / "single" / r.out_dir.name
        run_md(cu_file, single, r.settings, calculator=EMT(), log=quiet)
        _same_run(single, r.out_dir)
        _consecutive(r.out_dir, r.settings)


def test_single_and_batch_resume_each_other_and_skip_complete(cu_file, tmp_path):
    """Same settings hash: md-batch continues a run `superion md` started, and the other way round."""
    base = MDSettings(temperature_K=300, steps=100, equilibration_steps=20, ensemble="npt_iso", timestep_fs=2.0,
                      save_every=5, checkpoint_every=10, seed=2)
    reps = batch_replicas(tmp_path / "b", base, [450, 650], seeds=[7])
    with pytest.raises(KeyboardInterrupt):  # a single run of replica 0, interrupted after ~30 steps
        run_md(cu_file, reps[0].out_dir, reps[0].settings, calculator=EMT(fail_after=33), log=quiet)
    with pytest.raises(KeyboardInterrupt):  # the batch, interrupted in replica 1: both are stopped
        run_md_batch(cu_file, reps, calculators=[EMT(), EMT(fail_after=50)], log=quiet)
    for r in reps:
        assert json.loads((r.out_dir / "metadata.json").read_text())["status"] == "interrupted"
    res = run_md_batch(cu_file, reps, calculators=[EMT(), EMT()], log=quiet)
    assert [x.status for x in res.results] == ["complete", "complete"]
    steps = [x.resumed_from_step for x in res.results]
    assert 0 < min(steps) and steps[0] != steps[1]  # each replica resumed from its own checkpoint
    for r in reps:
        single = tmp_path / "single" / r.out_dir.name
        run_md(cu_file, single, r.settings, calculator=EMT(), log=quiet)
        _same_run(single, r.out_dir)
        _consecutive(r.out_dir, r.settings)
    before = {p: p.stat().st_mtime_ns for r in reps for p in r.out_dir.iterdir()}
    msgs = []
    res = run_md_batch(cu_file, reps, calculators=[EMT(fail_after=0), EMT(fail_after=0)], log=msgs.append)
    assert [x.status for x in res.results] == ["already-complete"] * 2 and res.model_calls == 0
    assert {p: p.stat().st_mtime_ns for r in reps for p in r.out_dir.iterdir()} == before
    assert sum("already complete" in m for m in msgs) == 2
    # complete.json removed (Snakemake does that before rerunning a job): re-marked, no step integrated
    (reps[1].out_dir / "complete.json").unlink()
    res = run_md_batch(cu_file, reps, calculators=[EMT(fail_after=0), EMT(fail_after=0)], log=quiet)
    assert res.results[1].status == "complete" and res.results[1].loop_steps == 0
    assert (reps[1].out_dir / "complete.json").exists()


def test_batch_input_errors(cu_file, shared_dir, tmp_path):
    base = MDSettings(temperature_K=300, steps=10, save_every=5)
    with pytest.raises(SuperionError, match="no temperatures"):
        batch_replicas(tmp_path, base, [])
    with pytest.raises(SuperionError, match="--seeds has 3 values for 2 temperatures"):
        batch_replicas(tmp_path, base, [300, 400], seeds=[1, 2, 3])
    with pytest.raises(SuperionError, match="share the run directory"):
        batch_replicas(tmp_path, base, [300, 300])
    with pytest.raises(SuperionError, match="unknown placeholder"):
        batch_replicas(tmp_path, base, [300], name="T{temp}")
    with pytest.raises(SuperionError, match="relative path"):
        batch_replicas(tmp_path, base, [300], name="../T{T}")
    assert parse_mass_settings(["ref", "B12H12=10", "B12H12=10,BH4=5"]) == [{}, {"B12H12": 10.0},
                                                                           {"B12H12": 10.0, "BH4": 5.0}]
    assert [mass_label(m) for m in ({}, {"BH4": 10.0, "B12H12": 2.5})] == ["ref", "B12H12x2.5+BH4x10"]
    reps = batch_replicas(tmp_path / "x", base, [300, 400], mass_settings=[{}, {"B12H12": 2}])
    assert [r.out_dir.name for r in reps] == ["T300K_ref_seed0", "T400K_ref_seed0", "T300K_B12H12x2_seed0",
                                              "T400K_B12H12x2_seed0"]
    nabh4 = shared_dir / NABH4
    with pytest.raises(SuperionError, match="B12H12.*not in this structure"):  # checked before anything is written
        run_md_batch(nabh4, reps, calculators=[EMT() for _ in reps], log=quiet)
    assert not (tmp_path / "x").exists()
    with pytest.raises(SuperionError, match="2 calculators for 4 replicas"):
        run_md_batch(cu_file, reps, calculators=[EMT(), EMT()], log=quiet)
    with pytest.raises(SuperionError, match="no replicas"):
        run_md_batch(cu_file, [], calculators=[], log=quiet)


# ----------------------------------------------------------------------------- real model
def test_batch_evaluator_matches_pes_calculator(shared_dir):
    """A structure alone: bitwise PESCalculator. In a batch: forces/stress to float32 rounding."""
    from ase.io import read

    from superion.potential import load_potential

    lp = load_potential(MODEL, device="cpu")
    base = read(shared_dir / NABH4) * (2, 1, 1)
    rng = np.random.default_rng(0)
    structs = []
    for k in range(4):
        a = base.copy()
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        if k == 2:
            a.set_cell(a.cell.array * 1.02, scale_atoms=True)
        structs.append(a)
    ref = []
    for a in structs:
        a.calc = lp.calculator()
        a.get_forces()
        ref.append(dict(a.calc.results))
    be = lp.batch_evaluator()
    alone = be([structs[1]])[0]
    for key in ("energy", "forces", "stress"):
        assert np.array_equal(alone[key], ref[1][key])
        assert np.asarray(alone[key]).dtype == np.asarray(ref[1][key]).dtype
    for got, want in zip(be(structs), ref):
        assert abs(got["energy"] - want["energy"]) < 1e-3  # ~1 float32 ulp of the total energy
        np.testing.assert_allclose(got["forces"], want["forces"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(got["stress"], want["stress"], rtol=0, atol=1e-7)
    broken = structs[0].copy()
    broken.positions[0] = np.nan
    out = be([structs[0], broken, structs[3]])
    # the broken one gets non-finite results (the replica's stability guard then stops it) or an
    # exception; the others in its batch are untouched
    assert isinstance(out[1], Exception) or not np.isfinite(out[1]["stress"]).all()
    for k, want in ((0, ref[0]), (2, ref[3])):
        np.testing.assert_allclose(out[k]["forces"], want["forces"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(out[k]["stress"], want["stress"], rtol=0, atol=1e-7)
    assert np.array_equal(lp.batch_evaluator(batched_graph=False)(structs)[2]["forces"], ref[2]["forces"])


def test_cli_md_batch_equals_md(shared_dir, tmp_path, capsys):
    """`superion md-batch` with the real model on the CPU: each replica's trajectory is `superion md`'s
    bitwise (graphs one at a time, the CPU default), or to float32 rounding with --batched-graph yes;
    same files in the run directory; a rerun does nothing."""
    from superion.cli import main

    cif = shared_dir / NABH4
    common = [str(cif), "--potential", MODEL, "--steps", "12", "--equilibration-steps", "4", "--save-every", "4",
              "--ensemble", "npt", "--threads", "1", "--device", "cpu", "--trajectory-dtype", "float64"]
    out = tmp_path / "batch"
    argv = ["md-batch", *common, "--temperatures-K", "500", "700", "--seeds", "3", "--mass-scales", "ref", "BH4=10",
            "--out", str(out)]
    assert main(argv) == 0
    assert "4 of 4 replicas complete" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["T500K_BH4x10_seed3", "T500K_ref_seed3", "T700K_BH4x10_seed3",
                                                     "T700K_ref_seed3"]
    single = tmp_path / "single"
    assert main(["md", *common, "--temperature-K", "700", "--seed", "3", "--mass-scale", "BH4=10", "--out",
                 str(single)]) == 0
    from superion.trajectory import open_trajectory

    rep = out / "T700K_BH4x10_seed3"
    assert sorted(p.name for p in rep.iterdir()) == sorted(p.name for p in single.iterdir())
    with open_trajectory(rep) as a, open_trajectory(single) as b:
        np.testing.assert_array_equal(a.steps, b.steps)
        np.testing.assert_array_equal(a.positions(), b.positions())
        np.testing.assert_array_equal(a.cells(), b.cells())
    ma, mb = (json.loads((d / "metadata.json").read_text()) for d in (rep, single))
    assert ma["settings_hash"] == mb["settings_hash"] and ma["masses_amu"] == mb["masses_amu"]
    capsys.readouterr()
    assert main(argv) == 0  # everything complete: nothing is evaluated
    assert capsys.readouterr().out.count("already complete") == 4
    one = tmp_path / "one_graph"  # the batched-graph path (CUDA's default) on the CPU: 1-ulp forces
    assert main(["md-batch", *common, "--temperatures-K", "700", "500", "--seeds", "3", "--mass-scales", "BH4=10",
                 "--batched-graph", "yes", "--out", str(one)]) == 0
    assert "largest batch 2" in capsys.readouterr().out
    with open_trajectory(one / "T700K_BH4x10_seed3") as a, open_trajectory(single) as b:
        np.testing.assert_array_equal(a.steps, b.steps)
        assert np.abs(a.positions() - b.positions()).max() < 1e-5  # 16 steps: not yet amplified
        assert np.abs(a.cells() - b.cells()).max() < 1e-5
