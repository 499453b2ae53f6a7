"""RunDirectory decisions (fresh, resume, complete, refusals) and its status files.

The decisions are tested on hand-made directories; the refusals that need a real run
(potential weights changed, checkpoint of other settings) use ASE's EMT through
``run_md(calculator=...)``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.emt import EMT

from superion.errors import SuperionError
from superion.layout import RUN_FILES
from superion.md import MDSettings, run_md
from superion.md.rundir import RunDirectory, RunPlan, new_metadata
from superion.md.storage import write_checkpoint

HASH = "0123456789abcdef"
quiet = lambda *_a: None  # noqa: E731


def write_meta(run, **kw):
    run.mkdir(parents=True, exist_ok=True)
    (run / RUN_FILES["metadata"]).write_text(json.dumps({"settings_hash": HASH, "started_utc": "then",
                                                         "potential": {"sha256": "w1"}} | kw))


# ----------------------------------------------------------------------------- decisions
def test_file_names_come_from_layout(tmp_path):
    rd = RunDirectory(tmp_path / "r")
    assert {rd.metadata_path.name, rd.thermo_path.name, rd.trajectory_path.name, rd.checkpoint_path.name,
            rd.complete_path.name} == set(RUN_FILES.values())
    assert rd.metadata_path.parent == tmp_path / "r"


def test_fresh_when_missing_or_empty(tmp_path):
    assert RunDirectory(tmp_path / "new").plan(HASH) == RunPlan("fresh", None)
    (tmp_path / "empty").mkdir()
    assert RunDirectory(tmp_path / "empty").plan(HASH).action == "fresh"
    assert not (tmp_path / "new").exists()  # deciding creates nothing


def test_resume_complete_and_restart_with_matching_metadata(tmp_path):
    run = tmp_path / "r"
    write_meta(run)
    plan = RunDirectory(run).plan(HASH)
    assert plan.action == "fresh" and plan.previous["started_utc"] == "then"  # killed before 1st checkpoint
    (run / RUN_FILES["checkpoint"]).write_bytes(b"x")
    plan = RunDirectory(run).plan(HASH)
    assert plan.action == "resume" and plan.resume
    (run / RUN_FILES["complete"]).write_text("{}")
    assert RunDirectory(run).plan(HASH).action == "complete"


@pytest.mark.parametrize("setup,msg", [
    ("file", "is not a directory"),
    ("other-hash", "different settings"),
    ("unreadable", "unreadable"),
    ("complete-only", "has complete.json but no metadata.json"),
])
def test_refusals(tmp_path, setup, msg):
    run = tmp_path / "r"
    if setup == "file":
        run.write_text("x")
    elif setup == "other-hash":
        write_meta(run, settings_hash="fedcba9876543210")
        (run / RUN_FILES["complete"]).write_text("{}")  # even a complete run of other settings
    elif setup == "unreadable":
        run.mkdir()
        (run / RUN_FILES["metadata"]).write_text("{not json")
    else:
        run.mkdir()
        (run / RUN_FILES["complete"]).write_text("{}")
    with pytest.raises(SuperionError, match=msg):
        RunDirectory(run).plan(HASH)


def test_potential_weights_check(tmp_path):
    rd = RunDirectory(tmp_path)
    rd.check_potential(RunPlan("fresh", None), "anything", "model")  # nothing recorded: fine
    rd.check_potential(RunPlan("resume", {"potential": {"sha256": "w1"}}), "w1", "model")
    with pytest.raises(SuperionError, match="'model' now has different weights"):
        rd.check_potential(RunPlan("resume", {"potential": {"sha256": "w1"}}), "w2", "model")


def test_checkpoint_of_other_settings_refused(tmp_path):
    rd = RunDirectory(tmp_path)
    write_checkpoint(rd.checkpoint_path, {"x": np.zeros(2)}, {"step": 10, "settings_hash": "other"})
    with pytest.raises(SuperionError, match="belongs to other settings"):
        rd.read_checkpoint(HASH)
    write_checkpoint(rd.checkpoint_path, {"x": np.zeros(2)}, {"step": 10, "settings_hash": HASH})
    state, info = rd.read_checkpoint(HASH)
    assert info["step"] == 10 and state["x"].shape == (2,)


# ----------------------------------------------------------------------------- metadata and status
def _meta(cu_file, plan):
    from ase.io import read

    from superion.structures.clusters import label_clusters

    atoms = read(cu_file)
    s = MDSettings(temperature_K=300.0, steps=10, save_every=5).validate()
    return new_metadata(settings=s, settings_hash=HASH, structure=cu_file, input_sha256="in", threads=1,
                        potential={"name": "p", "sha256": None, "device": "cpu"}, atoms=atoms,
                        base_masses=atoms.get_masses(), labels=label_clusters(atoms), plan=plan,
                        integrator="ase.md.nose_hoover_chain.MTKNPT")


def test_metadata_schema_and_resume_stamps(cu_file):
    meta = _meta(cu_file, RunPlan("fresh"))
    assert list(meta) == [
        "format", "status", "message", "settings", "settings_hash", "input", "potential", "versions", "device",
        "threads", "seed", "n_atoms", "symbols", "cell_initial_A", "masses_amu", "base_masses_amu", "mass_scale",
        "cluster_counts", "cluster_labels", "units", "started_utc", "resumed_utc", "n_frames", "integrator"]
    assert meta["status"] == "running" and meta["resumed_utc"] == [] and meta["n_atoms"] == 32
    resumed = _meta(cu_file, RunPlan("resume", {"started_utc": "then", "resumed_utc": ["once"]}))
    assert resumed["started_utc"] == "then" and resumed["resumed_utc"][0] == "once" and len(resumed["resumed_utc"]) == 2
    again = _meta(cu_file, RunPlan("fresh", {"started_utc": "then"}))  # restart before the first checkpoint
    assert again["started_utc"] == "then" and again["resumed_utc"] == []


def test_status_transitions(cu_file, tmp_path):
    rd = RunDirectory(tmp_path / "r")
    rd.clear_for_fresh_start()
    rd.begin(_meta(cu_file, RunPlan("fresh")))
    read = lambda: json.loads(rd.metadata_path.read_text())  # noqa: E731
    assert read()["status"] == "running"
    rd.mark_interrupted(KeyboardInterrupt("stop"), n_frames=2)
    assert read()["status"] == "interrupted" and read()["message"] == "KeyboardInterrupt: stop"
    rd.mark_failed(7, "step 7: boom", n_frames=3)
    m = read()
    assert (m["status"], m["failed_step"], m["n_frames"]) == ("failed", 7, 3) and not rd.complete_path.exists()
    rd.mark_complete(steps=10, n_frames=3, wall_s=1.0, steps_per_s=10.0)
    done = json.loads(rd.complete_path.read_text())
    assert read()["status"] == "complete" and read()["message"] == ""
    assert done == {"status": "complete", "settings_hash": HASH, "steps": 10, "n_frames": 3,
                    "finished_utc": read()["finished_utc"], "trajectory_sha256": None}  # no trajectory here
    rd.clear_for_fresh_start()  # a stale complete.json goes when a run starts over
    assert not rd.complete_path.exists()


# ----------------------------------------------------------------------------- through run_md
def test_run_md_refuses_changed_potential_weights(cu_file, tmp_path):
    s = dict(temperature_K=300.0, steps=20, ensemble="nvt", save_every=5, checkpoint_every=5)
    run = tmp_path / "r"
    run_md(cu_file, run, MDSettings(**s), calculator=EMT(), log=quiet)
    (run / RUN_FILES["complete"]).unlink()  # as if killed after the last checkpoint
    meta = json.loads((run / RUN_FILES["metadata"]).read_text())
    meta["potential"]["sha256"] = "weights-of-then"
    (run / RUN_FILES["metadata"]).write_text(json.dumps(meta))
    with pytest.raises(SuperionError, match="different weights"):
        run_md(cu_file, run, MDSettings(**s), calculator=EMT(), log=quiet)


def test_run_md_resumes_at_the_final_checkpoint(cu_file, tmp_path):
    """Killed between the final checkpoint and complete.json: the rerun only finishes."""
    s = dict(temperature_K=300.0, steps=20, ensemble="nvt", save_every=5, checkpoint_every=10)
    run = tmp_path / "r"
    run_md(cu_file, run, MDSettings(**s), calculator=EMT(), log=quiet)
    before = (run / RUN_FILES["thermo"]).read_bytes()
    (run / RUN_FILES["complete"]).unlink()
    msgs = []
    res = run_md(cu_file, run, MDSettings(**s), calculator=EMT(), log=msgs.append)
    assert res.status == "complete" and res.resumed_from_step == 20 and res.n_frames == 5
    assert (run / RUN_FILES["thermo"]).read_bytes() == before
    assert "resuming" in msgs[0] and (run / RUN_FILES["complete"]).exists()


def test_run_md_progress_lines_go_to_log(cu_file, tmp_path):
    """Not a terminal (pytest captures stderr): start and end lines through ``log``."""
    msgs = []
    s = MDSettings(temperature_K=300.0, steps=20, ensemble="nvt", save_every=5)
    run_md(cu_file, tmp_path / "r", s, calculator=EMT(), log=msgs.append)
    assert len(msgs) == 2 and "starting at step 0/20" in msgs[0] and "finished step 20/20 (0.02 ps)" in msgs[1]
    with pytest.raises(SuperionError, match="--progress-every-s"):
        run_md(cu_file, tmp_path / "r2", s, calculator=EMT(), log=quiet, progress_every_s=0)
    assert not (tmp_path / "r2").exists()


def test_plan_refuses_an_unwritable_output_before_the_model_loads(cu_file, tmp_path):
    (tmp_path / "f").write_text("a file")
    with pytest.raises(SuperionError, match=r"cannot write .*: .*f is a file, not a folder"):
        RunDirectory(tmp_path / "f" / "run").plan("h")

    class Refuses(EMT):  # the run must be refused before the calculator is ever asked
        def calculate(self, *a, **k):
            raise AssertionError("evaluated")

    with pytest.raises(SuperionError, match="not a folder"):
        run_md(cu_file, tmp_path / "f" / "run", MDSettings(temperature_K=300, steps=10, save_every=5),
               calculator=Refuses(), log=lambda *a: None)


def test_nan_guard_advice_depends_on_the_step():
    from types import SimpleNamespace

    from superion.errors import SimulationError
    from superion.md.observers import StabilityGuard

    guard = StabilityGuard(MDSettings(temperature_K=300, steps=10, save_every=5), np.ones(2))
    bad = SimpleNamespace(momenta=lambda: np.full((2, 3), np.nan), positions=lambda: np.zeros((2, 3)),
                          forces=lambda: None)
    with pytest.raises(SimulationError, match="step 0: .*check the input structure"):
        guard.check_fast(0, bad)
    with pytest.raises(SimulationError, match="step 7: .*smaller --timestep-fs, relax the structure first"):
        guard.check_fast(7, bad)
