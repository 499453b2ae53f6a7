"""Checks of `make test-slurm` (called by run.sh with the files it collected); one line per failure.

    check.py accounting   --workdir W --reference L --name N --jobs sacct.psv  --plan plan.txt
    check.py rejected     --gpu-log F --gpu-rc RC --cpus-log F --cpus-rc RC --pending F --seconds S
    check.py noaccounting --workdir W --reference L --name N --jobs squeue.psv --plan plan.txt
                          --jobcomp F --after-kill F --locks-after-kill F --cancelled ID
                          --cancelled-run DIR --rerun-log F

Prints what it verified (for the report) and exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

FAILURES: list[str] = []


def check(ok: bool, msg: str) -> bool:
    if not ok:
        FAILURES.append(msg)
        print(f"  FAIL {msg}", file=sys.stderr)
    return ok


# ---- the plan: one entry per job of the dry run -------------------------------------------

def read_plan(path: Path) -> list[dict]:
    """Jobs of a `snakemake -n` output that become cluster jobs: rule, wildcard values, threads, mem_mb, runtime, log."""
    jobs, cur = [], None
    for line in path.read_text().splitlines():
        m = re.match(r"^(local)?rule (\w+):$", line)
        if m:
            cur = {"local": bool(m.group(1)), "rule": m.group(2), "wildcards": [], "threads": 1, "log": [],
                   "output": False}
            jobs.append(cur)
            continue
        if cur is None or not line.startswith("    "):
            continue
        key, _, val = line.strip().partition(": ")
        if key == "output":
            cur["output"] = True
        elif key == "wildcards":
            cur["wildcards"] = [kv.split("=", 1)[1] for kv in val.split(", ")]
        elif key == "threads":
            cur["threads"] = int(val)
        elif key == "log":
            cur["log"] = [p.strip() for p in val.split(",")]
        elif key == "resources":
            res = dict(kv.split("=", 1) for kv in val.split(", ") if "=" in kv)
            for k in ("mem_mb", "runtime"):
                if res.get(k, "").isdigit():
                    cur[k] = int(res[k])
    return [j for j in jobs if not j["local"] and j["output"]]  # target rules (all) run in the main process


def job_key(job: dict) -> str:
    """The comment snakemake-executor-plugin-slurm gives the job: rule_<rule>[_wildcards_<values>]."""
    key = f"rule_{job['rule']}"
    return key + ("_wildcards_" + "_".join(job["wildcards"]) if job["wildcards"] else "")


def minutes(limit: str) -> int:
    """SLURM time limit ([D-]HH:MM:SS, MM:SS) in minutes."""
    days = 0
    if "-" in limit:
        d, limit = limit.split("-", 1)
        days = int(d)
    parts = [int(p) for p in limit.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    h, m, s = parts
    return days * 1440 + h * 60 + m + (1 if s else 0)


def mem_mb(text: str) -> int:
    m = re.match(r"^(\d+(?:\.\d+)?)([KMGT]?)", text)
    factor = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024, "": 1}[m.group(2)]
    return round(float(m.group(1)) * factor)


def read_jobs(path: Path, fields: list[str]) -> list[dict]:
    """The workflow's SLURM jobs (comment rule_...) of a `sacct -P` / `squeue -o %..|..` listing."""
    rows = []
    for line in path.read_text().splitlines():
        row = dict(zip(fields, line.split("|")))
        if row.get("comment", "").startswith("rule_"):
            rows.append(row)
    return rows


def check_jobs(plan: list[dict], rows: list[dict], *, exactly_once: bool) -> dict[str, list[dict]]:
    """Every planned job ran as a SLURM job with its rule's CPUs, memory and time limit."""
    by_key: dict[str, list[dict]] = {}
    for r in rows:
        by_key.setdefault(r["comment"], []).append(r)
    planned = {job_key(j): j for j in plan}
    check(len(planned) == len(plan), f"two planned jobs share a SLURM comment: {len(planned)} keys for {len(plan)} jobs")
    for key, job in planned.items():
        recs = by_key.get(key, [])
        if not check(bool(recs), f"{key}: no SLURM job"):
            continue
        check(any(r["state"] == "COMPLETED" for r in recs), f"{key}: no COMPLETED SLURM job ({[r['state'] for r in recs]})")
        if exactly_once:
            check(len(recs) == 1, f"{key}: {len(recs)} SLURM jobs, expected one")
        for r in recs:
            check(int(r["cpus"]) == job["threads"], f"{key}: {r['cpus']} CPUs allocated, rule asks {job['threads']}")
            check(mem_mb(r["mem"]) == job["mem_mb"], f"{key}: memory {r['mem']}, rule asks {job['mem_mb']} MB")
            check(minutes(r["limit"]) == job["runtime"], f"{key}: time limit {r['limit']}, rule asks {job['runtime']} min")
    extra = sorted(set(by_key) - set(planned))
    check(not extra, f"SLURM jobs that are no planned job: {extra}")
    return by_key


# ---- results ----------------------------------------------------------------------------

def _cells_equal(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-12)


def check_tables(res: Path, ref: Path) -> None:
    for name in ("summary.csv", "diffusion.csv"):
        a, b = res / name, ref / name
        if not (check(a.is_file(), f"{a} missing") and check(b.is_file(), f"{b} missing")):
            continue
        ra, rb = list(csv.reader(a.open())), list(csv.reader(b.open()))
        ok = len(ra) == len(rb) and all(len(x) == len(y) and all(map(_cells_equal, x, y)) for x, y in zip(ra, rb))
        check(ok, f"{name} of the SLURM run differs from the local run's")
        if ok:
            print(f"  ok   {name}: {len(ra) - 1} rows equal to the local run's (float noise rel 1e-6)")


def check_logs(work: Path, plan: list[dict]) -> None:
    """Per-job logs at results/<name>/logs/<rule>/... (docs/workflow.md); MD and relax logs say what ran."""
    n = 0
    for job in plan:
        for log in job["log"]:
            p = work / log
            if not check(p.is_file(), f"log {log} of {job_key(job)} missing"):
                continue
            n += 1
            text = p.read_text(errors="replace")
            if job["rule"] == "md":
                check("superion md:" in text and "steps" in text, f"{log}: no MD summary line")
            if job["rule"] == "relax":
                check("converged=" in text, f"{log}: no relaxation summary line")
    print(f"  ok   {n} per-job logs under results/<name>/logs/<rule>/ (docs/workflow.md); MD and relax logs filled")


def check_config(work: Path, name: str) -> None:
    shown = subprocess.run([sys.executable, "-m", "superion", "config", "show", "--json", f"configs/{name}.yaml"],
                           cwd=work, capture_output=True, text=True)
    written = json.loads((work / "results" / name / "config.json").read_text())
    if check(shown.returncode == 0 and json.loads(shown.stdout) == written,
             "results/<name>/config.json is not the config alone (something merged under it)"):
        print(f"  ok   results/{name}/config.json is configs/{name}.yaml alone (jobs checked they parsed the same)")


def check_trajectories(res: Path, ref: Path) -> int:
    """Every MD run equals the uninterrupted local one frame by frame: nothing doubled, nothing lost."""
    import numpy as np

    from superion.md.storage import read_thermo
    from superion.trajectory import open_trajectory

    n = 0
    for meta in sorted((ref / "runs").rglob("metadata.json")):
        rel = meta.parent.relative_to(ref)
        run = res / rel
        if not check((run / "complete.json").is_file(), f"{rel}: not complete"):
            continue
        with open_trajectory(run) as a, open_trajectory(meta.parent) as b:
            same = (a.n_frames == b.n_frames and np.array_equal(np.asarray(a.steps), np.asarray(b.steps))
                    and np.allclose(a.positions(np.arange(a.n_frames)), b.positions(np.arange(b.n_frames)),
                                    rtol=0, atol=1e-5))
        check(same, f"{rel}: trajectory differs from the uninterrupted run's (frames {a.n_frames} vs {b.n_frames})")
        ta, tb = read_thermo(run / "thermo.csv")["step"], read_thermo(meta.parent / "thermo.csv")["step"]
        check(np.array_equal(ta, tb), f"{rel}: thermo steps differ from the uninterrupted run's ({len(ta)} vs {len(tb)} rows)")
        n += 1
    return n


# ---- commands ----------------------------------------------------------------------------

def cmd_accounting(a) -> None:
    print("with accounting (slurmdbd; the plugin polls job states as the profile says):")
    plan = read_plan(a.plan)
    rows = read_jobs(a.jobs, ["id", "name", "comment", "cpus", "mem", "limit", "state", "exit", "elapsed"])
    check_jobs(plan, rows, exactly_once=True)
    names = {r["name"] for r in rows}
    check(len(names) == 1, f"SLURM jobs of {len(names)} runs: {names}")
    if not FAILURES:
        print(f"  ok   sacct: {len(rows)} SLURM jobs = {len(plan)} planned jobs ({len({j['rule'] for j in plan})} rules), "
              "each COMPLETED once with its rule's CPUs, memory and time limit")
    res = a.workdir / "results" / a.name
    check_tables(res, a.reference / "results" / a.name)
    check_logs(a.workdir, plan)
    check_config(a.workdir, a.name)


def _one_line(log: Path, reason: str) -> str | None:
    for line in log.read_text(errors="replace").splitlines():
        if "sbatch failed" in line and re.search(reason, line):
            return line.strip()
    return None


def cmd_rejected(a) -> None:
    print("requests the node cannot satisfy:")
    for what, log, rc, reason in (("GPU (--set-resources md:gres=gpu:1)", a.gpu_log, a.gpu_rc,
                                   r"Invalid generic resource \(gres\) specification"),
                                  ("more CPUs than the node (--config threads=...)", a.cpus_log, a.cpus_rc,
                                   "More processors requested than permitted|Requested node configuration is not available")):
        line = _one_line(log, reason)
        if check(rc != 0 and line is not None, f"{what}: expected a failed submission naming '{reason}' (rc {rc})"):
            print(f"  ok   {what}: snakemake exits {rc}; {line[:160]}")
    pending = a.pending.read_text().strip()
    check(not pending, f"jobs left pending: {pending}")
    check(a.seconds < 240, f"rejections took {a.seconds} s")
    if not pending:
        print(f"  ok   nothing left pending (both refused at submission, {a.seconds} s for both)")


def cmd_noaccounting(a) -> None:
    print("without accounting (no slurmdbd; job states from squeue), Snakemake killed with kill -9 mid-MD:")
    plan = read_plan(a.plan)
    rows = read_jobs(a.jobs, ["id", "name", "comment", "cpus", "mem", "limit", "state"])
    by_key = check_jobs(plan, rows, exactly_once=False)
    comp = [ln for ln in a.jobcomp.read_text().splitlines() if ln.startswith("JobId=")]
    check(len(comp) == len(rows), f"jobcomp log has {len(comp)} jobs, squeue {len(rows)}")
    runs = {r["name"] for r in rows}
    check(len(runs) == 2, f"expected the jobs of two snakemake runs (killed, rerun), got {len(runs)}")
    if not FAILURES:
        print(f"  ok   squeue/jobcomp: {len(rows)} SLURM jobs of 2 snakemake runs cover all {len(plan)} planned jobs, "
              "each with its rule's CPUs, memory and time limit, each COMPLETED at least once")
    left = [ln.split("|") for ln in a.after_kill.read_text().splitlines() if ln.strip()]
    if check(any(st in ("RUNNING", "PENDING") for _, _, st in left), "no job was left running after kill -9"):
        print(f"  ok   after kill -9 the plugin left {len(left)} job(s) queued or running (it cancels only on "
              f"Ctrl-C/SIGTERM): {', '.join(f'{i} {c} {s}' for i, c, s in left)}")
    check(a.locks_after_kill.read_text().strip() != "", "kill -9 left no .snakemake/locks (test did not hit the case)")
    rerun = a.rerun_log.read_text(errors="replace")
    if check("removed the Snakemake lock left by a killed process" in rerun, "the rerun did not clear the stale lock"):
        print("  ok   the rerun removed the lock the killed snakemake left (no 'Directory cannot be locked')")
    cancelled = [r for r in rows if r["id"] == a.cancelled]
    check(bool(cancelled) and cancelled[0]["state"] == "CANCELLED", f"job {a.cancelled} is not CANCELLED")
    meta = json.loads((a.cancelled_run / "metadata.json").read_text())
    log_text = "\n".join(
        (a.workdir / p).read_text(errors="replace") for j in plan if j["rule"] == "md" for p in j["log"])
    resumed = bool(meta.get("resumed_utc")) and "resuming" in log_text
    if check(resumed, f"{a.cancelled_run}: the cancelled MD run did not resume from its checkpoint"):
        print(f"  ok   the cancelled MD job's run resumed from its checkpoint ({a.cancelled_run.name} of "
              f"{a.cancelled_run.parent.parent.name}/{a.cancelled_run.parent.name})")
    waited = log_text.count("waiting for it to finish")
    print(f"  --   {waited} rerun MD job(s) found the killed run's job still at work and waited for it (run-directory lock)")
    md_jobs = {k: v for k, v in by_key.items() if k.startswith("rule_md_")}
    print("  --   MD SLURM jobs per run: " + "; ".join(
        f"{k.removeprefix('rule_md_wildcards_')}: {', '.join(r['state'] for r in v)}" for k, v in sorted(md_jobs.items())))
    res = a.workdir / "results" / a.name
    ref = a.reference / "results" / a.name
    nfail = len(FAILURES)
    n = check_trajectories(res, ref)
    if len(FAILURES) == nfail:
        print(f"  ok   {n} MD trajectories equal the uninterrupted local ones frame by frame (none doubled or lost)")
    check_tables(res, ref)
    check_logs(a.workdir, plan)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("accounting", "noaccounting"):
        s = sub.add_parser(name)
        s.add_argument("--workdir", type=Path, required=True)
        s.add_argument("--reference", type=Path, required=True)
        s.add_argument("--name", required=True)
        s.add_argument("--jobs", type=Path, required=True)
        s.add_argument("--plan", type=Path, required=True)
        if name == "noaccounting":
            for opt in ("--jobcomp", "--after-kill", "--locks-after-kill", "--cancelled-run", "--rerun-log"):
                s.add_argument(opt, type=Path, required=True)
            s.add_argument("--cancelled", required=True)
    r = sub.add_parser("rejected")
    for opt in ("--gpu-log", "--cpus-log", "--pending"):
        r.add_argument(opt, type=Path, required=True)
    for opt in ("--gpu-rc", "--cpus-rc", "--seconds"):
        r.add_argument(opt, type=int, required=True)
    a = p.parse_args()
    {"accounting": cmd_accounting, "rejected": cmd_rejected, "noaccounting": cmd_noaccounting}[a.cmd](a)
    if FAILURES:
        print(f"check.py {a.cmd}: {len(FAILURES)} check(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
