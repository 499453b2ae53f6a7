"""End to end: the smoke config through the real `snakemake` (prepare -> relax -> MD -> analysis ->
Arrhenius -> tables -> figures -> report), in a temporary working directory.

Then: deleting figures and rerunning regenerates them without any MD job; a bad config stops
before any job with one clear line.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
KINDS = ("arrhenius", "mass_scaling", "rotation", "msd", "density", "thermo")


def _snakemake(workdir: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=workdir)


def _tail(proc: subprocess.CompletedProcess, n: int = 60) -> str:
    return "\n".join((proc.stdout + proc.stderr).splitlines()[-n:])


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, shared_dir):
    """Run configs/smoke.yaml once for the module; return (workdir, results dir, process)."""
    help_ = subprocess.run([sys.executable, "-m", "superion", "--help"], capture_output=True, text=True)
    missing = [c for c in ("prepare", "relax", "md", "analyze") if c not in help_.stdout]
    assert not missing, f"superion commands missing: {missing}"
    work = tmp_path_factory.mktemp("smoke")
    (work / "structures").symlink_to(REPO / "structures")
    shutil.copy(REPO / "configs" / "smoke.yaml", work / "smoke.yaml")
    proc = _snakemake(work, "--cores", "2", "--configfile", "smoke.yaml", "--rerun-incomplete")
    assert proc.returncode == 0, _tail(proc)
    return work, work / "results" / "smoke", proc


def test_smoke_tables(smoke_run):
    _, res, _ = smoke_run
    runs = _rows(res / "diffusion.csv")
    summary = _rows(res / "summary.csv")
    assert len(runs) == 4  # 1 system x 2 mass settings x 2 temperatures x 1 seed
    assert {(r["mass_setting"], float(r["temperature_K"])) for r in runs} == {
        ("ref", 600.0), ("ref", 800.0), ("BH4x10", 600.0), ("BH4x10", 800.0)}
    for r in runs:
        assert int(float(r["n_ions"])) == 4  # Na4 B4 H16 cell
        assert 150 < float(r["volume_A3"]) < 350  # 6.16 A cube = 234 A^3
        # the smoke runs are tiny and caged: each is classified; a non-diffusive one is a bound, not a D
        assert r["regime"] in ("diffusive", "subdiffusive", "immobile")
        if r["regime"] != "diffusive":
            assert r["diffusivity_cm2_s"] == "" and r["D_text_cm2_s"].startswith("< ")
            assert float(r["diffusivity_upper_bound_cm2_s"]) > 0
        else:
            assert math.isfinite(float(r["diffusivity_cm2_s"]))
        assert float(r["msd_ref_A2"]) >= 0 and r["msd_ref_text_A2"]
        assert 0.0 <= float(r["active_fraction"]) <= 1.0
        assert float(r["BH4_rotation_speed_rad_ps"]) > 0
        assert Path(res.parent.parent / r["msd_npz"]).is_file()
    assert len(summary) == 2
    # non-diffusive runs are excluded from the Arrhenius fit and listed as upper bounds
    for system, mass in {(r["system"], r["mass_setting"]) for r in runs}:
        arr = json.loads((res / "arrhenius" / system / f"{mass}.json").read_text())
        caged = {float(r["temperature_K"]) for r in runs if (r["system"], r["mass_setting"]) == (system, mass) and r["regime"] != "diffusive"}
        assert {b["temperature_K"] for b in arr["upper_bounds"]} == caged
        assert all(not p["used"] for p in arr["points"] if p["temperature_K"] in caged)
        if caged:
            assert arr["resolved"] is False and arr["not_resolved_reason"]
    by_mass = {r["mass_setting"]: r for r in summary}
    assert by_mass["BH4x10"]["mass_series"] == "BH4" and float(by_mass["BH4x10"]["mass_factor"]) == 10
    for r in summary:
        assert r["temperatures_K"] == "600;800"
        assert "short runs" in r["warnings"]
        if r["sigma_300K_mS_cm"] and r["sigma_300K_ci95_low_mS_cm"]:
            assert float(r["sigma_300K_ci95_low_mS_cm"]) <= float(r["sigma_300K_mS_cm"]) <= float(r["sigma_300K_ci95_high_mS_cm"])


def test_smoke_figures_and_logs(smoke_run):
    _, res, _ = smoke_run
    for kind in KINDS:
        for ext in ("pdf", "svg", "png"):
            p = res / "figures" / f"{kind}.{ext}"
            assert p.is_file() and p.stat().st_size > 1000, p
    assert (res / "config.json").is_file()
    assert list((res / "logs" / "md").rglob("*.log")) and list((res / "benchmarks" / "md").rglob("*.tsv"))
    run_dir = res / "runs" / "NaBH4" / "ref" / "T600K" / "seed1"
    assert (run_dir / "complete.json").is_file() and (run_dir / "trajectory.h5").is_file()


def test_smoke_first_page_and_equilibration(smoke_run):
    """The first page says in words what is not resolved, with table and figures inline; every run
    was checked for equilibration and the verdict reaches diffusion.csv."""
    _, res, _ = smoke_run
    page = (res / "report" / "index.html").read_text()
    assert "not resolved" in page and "data:image/png;base64," in page and "<table" in page
    with open(res / "diffusion.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["equilibration"] for r in rows)
    # the smoke runs are 0.04 ps: too short to judge, and the table says so
    assert all("equilibration not judged" in r["warnings"] for r in rows if r["equilibration"].startswith("too short"))


def test_smoke_figures_regenerate_without_md(smoke_run):
    work, res, _ = smoke_run
    md_marks = sorted((res / "runs").rglob("complete.json"))
    before = {p: p.stat().st_mtime_ns for p in md_marks}
    (res / "figures" / "arrhenius.png").unlink()
    for p in (res / "figures").glob("msd.*"):
        p.unlink()
    proc = _snakemake(work, "--cores", "2", "--configfile", "smoke.yaml", "--rerun-incomplete")
    assert proc.returncode == 0, _tail(proc)
    out = proc.stdout + proc.stderr
    assert "figure_arrhenius" in out and "figure_msd" in out
    for rule in ("rule md:", "rule relax:", "rule prepare:", "rule diffusion:"):
        assert rule not in out, f"{rule} ran again:\n{_tail(proc)}"
    assert {p: p.stat().st_mtime_ns for p in md_marks} == before
    assert (res / "figures" / "arrhenius.png").is_file() and (res / "figures" / "msd.svg").is_file()


def test_smoke_report_html(smoke_run):
    work, res, _ = smoke_run
    report = work / "report.html"
    proc = _snakemake(work, "--configfile", "smoke.yaml", "--report", str(report))
    assert proc.returncode == 0, _tail(proc)
    html = report.read_text(errors="replace")
    assert len(html) > 50_000  # self-contained: figures embedded
    for kind in KINDS:
        assert f"{kind}.png" in html


def test_bad_config_stops_before_any_job(tmp_path):
    (tmp_path / "structures").symlink_to(REPO / "structures")
    text = (REPO / "configs" / "smoke.yaml").read_text().replace("temperatures_K: [600, 800]", "temperatures_K: [600, -800]")
    assert "-800" in text
    (tmp_path / "bad.yaml").write_text(text)
    proc = _snakemake(tmp_path, "--cores", "1", "--configfile", "bad.yaml", timeout=120)
    assert proc.returncode != 0
    assert "temperatures_K[1]: temperature -800 K is not positive" in proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def smoke_batch_run(tmp_path_factory, shared_dir):
    """The smoke config with batched MD (md_batch=2: both temperatures of a mass setting in one job)."""
    work = tmp_path_factory.mktemp("smoke_batch")
    (work / "structures").symlink_to(REPO / "structures")
    shutil.copy(REPO / "configs" / "smoke.yaml", work / "smoke.yaml")
    proc = _snakemake(work, "--cores", "2", "--configfile", "smoke.yaml", "--rerun-incomplete", "--config", "md_batch=2")
    assert proc.returncode == 0, _tail(proc)
    return work, work / "results" / "smoke", proc


def _same_table(a: Path, b: Path, rtol: float = 1e-4) -> None:
    """Same rows, columns and text; numbers equal to ``rtol`` (batched M3GNet forces agree with single
    ones to float32 rounding, so trajectories, and the numbers from them, to ~1e-6)."""
    ra, rb = _rows(a), _rows(b)
    assert len(ra) == len(rb) and [list(r) for r in ra] == [list(r) for r in rb]
    for x, y in zip(ra, rb):
        for k in x:
            try:
                u, v = float(x[k]), float(y[k])
            except ValueError:
                assert x[k] == y[k], (a.name, k)
                continue
            assert u == v or abs(u - v) <= rtol * max(abs(u), abs(v)), (a.name, k, u, v)


def test_smoke_batched_md_gives_the_same_tables(smoke_run, smoke_batch_run):
    _, res, _ = smoke_run
    _, bres, bproc = smoke_batch_run
    out = bproc.stdout + bproc.stderr
    assert "rule md_batch_0:" in out and "rule md:" not in out
    assert "md-batch" in (bres / "logs" / "md" / "NaBH4" / "ref" / "batch0.log").read_text()
    for name in ("diffusion.csv", "summary.csv"):
        _same_table(res / name, bres / name)
    assert (res / "config.json").read_text() == (bres / "config.json").read_text()  # md_batch is not in it


def test_switching_batching_reruns_nothing(smoke_run, smoke_batch_run):
    for (work, _, _), extra in ((smoke_run, ["--config", "md_batch=2"]), (smoke_batch_run, [])):
        proc = _snakemake(work, "-n", "--cores", "1", "--configfile", "smoke.yaml", *extra)
        assert proc.returncode == 0, _tail(proc)
        assert "Nothing to be done" in proc.stdout + proc.stderr, _tail(proc)


# ---- kill -9 and rerun ------------------------------------------------------------------

def _run_dirs(res: Path) -> list[Path]:
    return sorted(p.parent for p in (res / "runs").rglob("metadata.json"))


def _wait(cond, what: str, proc: subprocess.Popen, timeout: float = 300.0, every: float = 0.05):
    t0 = time.monotonic()
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"snakemake ended (rc {proc.returncode}) before {what}")
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(every)


def _gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_kill9_mid_md_and_mid_analysis_then_rerun_gives_the_same_tables(smoke_run, tmp_path):
    """`make smoke`'s command, killed with SIGKILL twice, then rerun: same tables as uninterrupted.

    1. mid-MD: the whole DAG dies (Snakemake and its jobs): the rerun resumes MD from checkpoints;
    2. mid-analysis: only the Snakemake process dies, its jobs run on (what kill -9 of Snakemake
       does): the rerun meets its stale directory lock and the still-running jobs.
    To stay cheap it starts from the reference's relaxed structures and stops at the tables.
    """
    _, ref_res, _ = smoke_run
    work = tmp_path / "killed"
    work.mkdir()
    (work / "structures").symlink_to(REPO / "structures")
    shutil.copy(REPO / "configs" / "smoke.yaml", work / "smoke.yaml")
    res = work / "results" / "smoke"
    shutil.copytree(ref_res / "structures", res / "structures")  # keeps mtimes: up to date
    cmd = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
           "--cores", "2", "--configfile", "smoke.yaml", "--rerun-incomplete",
           "results/smoke/summary.csv", "results/smoke/diffusion.csv"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    def start(name):
        log = open(tmp_path / f"{name}.log", "w")
        return subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def md_running():  # an MD run past its first checkpoint and not finished
        return any((d / "checkpoint.npz").exists() and not (d / "complete.json").exists() for d in _run_dirs(res))

    p1 = start("first")
    try:
        _wait(md_running, "an MD run with a checkpoint", p1)
        os.killpg(p1.pid, signal.SIGKILL)  # Snakemake and every job it started
    finally:
        p1.wait()
    cut = [d for d in _run_dirs(res) if not (d / "complete.json").exists()]
    # only runs past a checkpoint resume; one killed before its first checkpoint restarts fresh
    # (a race with the kill on a loaded machine), and must still end equal to the reference
    interrupted = [d for d in cut if (d / "checkpoint.npz").exists()]
    assert interrupted, "no MD run was cut short after a checkpoint"
    assert list((work / ".snakemake" / "locks").glob("*.lock")), "kill -9 leaves Snakemake's lock behind"

    def analysis_started():
        logs = res / "logs"
        return any(any((logs / k).rglob("*.log")) for k in ("diffusion", "rotation", "density") if (logs / k).is_dir())

    p2 = start("second")
    try:
        _wait(analysis_started, "an analysis job", p2)
        os.kill(p2.pid, signal.SIGKILL)  # Snakemake only: its jobs keep running
        p2.wait()
        third = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        out = third.stdout + third.stderr
        assert third.returncode == 0, "\n".join(out.splitlines()[-40:])
        assert "removed the Snakemake lock left by a killed process" in out
        logs = out + (tmp_path / "first.log").read_text() + (tmp_path / "second.log").read_text()
        assert "rule relax:" not in logs and "rule prepare:" not in logs  # seeded, up to date
        t0 = time.monotonic()
        while not _gone(p2.pid) and time.monotonic() - t0 < 120:  # orphans of the second run
            time.sleep(0.2)
    finally:
        if not _gone(p2.pid):
            os.killpg(p2.pid, signal.SIGKILL)
    for name in ("summary.csv", "diffusion.csv"):
        assert (res / name).read_text() == (ref_res / name).read_text(), name
    # the cut-short runs resumed from their checkpoints, into whole trajectories (no frame twice)
    ref_runs = {d.relative_to(ref_res): d for d in _run_dirs(ref_res)}
    for d in interrupted:
        meta = json.loads((d / "metadata.json").read_text())
        assert meta["status"] == "complete" and meta["resumed_utc"], d
    from superion.trajectory import open_trajectory

    for d in _run_dirs(res):
        with open_trajectory(ref_runs[d.relative_to(res)]) as ref, open_trajectory(d) as tr:
            assert tr.n_frames == ref.n_frames and list(tr.steps) == list(ref.steps), d
