"""Every shipped config through the real Snakefile, from a checkout's root (as documented).

`snakemake -n --configfile configs/X.yaml` from the repository root must plan exactly the runs
that `superion config validate` counts, and the config the main process validates (and writes
to results/X/config.json) must be X alone: no other file merged under it. A job process (as on
SLURM, which parses the Snakefile again) must run that same config or stop with one line.

The checkout is mirrored into a temporary folder by symlinks (Snakefile, workflow/, configs/,
structures/), so the dry runs see the repository layout without writing into the repository.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
SUPERION = [sys.executable, "-m", "superion"]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def root(tmp_path_factory, shared_dir):
    """A stand-in for the repository root (symlinks), so results/ lands in a temporary folder."""
    work = tmp_path_factory.mktemp("root")
    for name in ("Snakefile", "workflow", "configs", "structures"):
        (work / name).symlink_to(REPO / name)
    return work


def _run(cmd, cwd, timeout=300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def _job_counts(text: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    counts, in_table = {}, False
    for line in text.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            m = re.match(r"^([A-Za-z_][\w]*)\s+(\d+)\s*$", line)
            if m:
                counts[m.group(1)] = int(m.group(2))
            elif counts and not line.strip().startswith("-"):
                break
    return counts


def _validate_runs(root: Path, cfg: str) -> int:
    proc = _run([*SUPERION, "config", "validate", cfg], root)
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"(\d+) MD runs", proc.stdout)
    assert m, proc.stdout
    return int(m.group(1))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_dry_run_every_config_from_repo_root(root, path):
    rel = f"configs/{path.name}"
    proc = _run([SNAKEMAKE, "-n", "--configfile", rel], root)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, "\n".join(out.splitlines()[-20:])
    assert "is extended by additional config" not in out  # nothing merged under the config
    counts = _job_counts(proc.stdout)
    n_md = _validate_runs(root, rel)
    assert counts.get("md") == n_md, (counts, n_md)
    # per run: diffusion and rotation always, density where the system's analysis asks for it
    assert counts.get("diffusion") == n_md and counts.get("rotation") == n_md
    shown = json.loads(_run([*SUPERION, "config", "show", "--json", rel], root).stdout)
    written = json.loads((root / "results" / shown["name"] / "config.json").read_text())
    assert written == shown  # the main process validated this config and nothing else
    n_density = sum(1 for s in shown["systems"] if shown["systems"][s].get("analysis", {}).get(
        "density", shown["analysis"]["density"]))
    assert ("density" in counts) == (n_density > 0)
    assert counts.get("tables") == 1


def test_no_configfile_runs_the_default_sweep(root):
    proc = _run([SNAKEMAKE, "-n", "-p"], root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # md.pdamp_fs reaches superion md where the config sets it (default.yaml: 500 fs), else absent
    md_cmds = [ln for ln in proc.stdout.splitlines() if " md " in ln and "--steps" in ln]
    assert md_cmds and all("--pdamp-fs 500 " in ln for ln in md_cmds)
    smoke = _run([SNAKEMAKE, "-n", "-p", "--configfile", "configs/smoke.yaml"], root)
    assert smoke.returncode == 0 and "--steps" in smoke.stdout and "--pdamp-fs" not in smoke.stdout
    assert _job_counts(proc.stdout).get("md") == _validate_runs(root, "configs/default.yaml")
    written = json.loads((root / "results" / "default" / "config.json").read_text())
    assert written == json.loads(_run([*SUPERION, "config", "show", "--json", "configs/default.yaml"], root).stdout)


def test_job_process_runs_the_validated_config_or_stops(root):
    """A job (here: Snakemake's remote mode, as on SLURM) re-parses the Snakefile from the
    --configfiles/--config it is handed; it must land on results/<name>/config.json exactly."""
    main = _run([SNAKEMAKE, "-n", "--configfile", "configs/smoke.yaml"], root)
    assert main.returncode == 0, main.stderr[-2000:]
    cfg_json = root / "results" / "smoke" / "config.json"
    before = cfg_json.read_text()
    job = _run([SNAKEMAKE, "--mode", "remote", "-n", "--cores", "1", "--configfiles", "configs/smoke.yaml"], root)
    assert job.returncode == 0, job.stderr[-2000:]
    # a job handed another config (an override the main process did not see) stops with one line
    bad = _run([SNAKEMAKE, "--mode", "remote", "-n", "--cores", "1", "--configfiles", "configs/smoke.yaml",
                "--config", "threads=3"], root)
    assert bad.returncode != 0
    line = [ln for ln in (bad.stdout + bad.stderr).splitlines() if "differs from" in ln]
    assert line and "first difference: config.threads" in line[0] and "results/smoke/config.json" in line[0]
    assert cfg_json.read_text() == before  # a job never rewrites the main process's config


def _blocks(text: str) -> list[tuple[str, str]]:
    """(rule, job block text) of each job in a dry run."""
    out, cur = [], None
    for line in text.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            cur = [m.group(1), ""]
            out.append(cur)
        elif cur is not None and line.startswith("    "):
            cur[1] += line + "\n"
    return [tuple(b) for b in out]


def _resources(block: str) -> dict[str, str]:
    m = re.search(r"^    resources: (.*)$", block, re.M)
    return dict(kv.split("=", 1) for kv in m.group(1).split(", ") if "=" in kv) if m else {}


# profile -> (config, arguments): the commands of README.md / docs/workflow.md
PROFILE_CMDS = {
    "slurm-gpu-md": ("paper", ["--profile", "workflow/profiles/slurm", "--default-resources", "slurm_account=acct",
                               "slurm_partition=cpu", "--set-resources", "md:slurm_partition=gpu", "md:gres=gpu:1"]),
    "gpu": ("paper", ["--profile", "workflow/profiles/gpu"]),
    "slurm": ("argyrodite", ["--profile", "workflow/profiles/slurm", "--default-resources", "slurm_account=acct",
                             "slurm_partition=cpu"]),
    "local": ("argyrodite", ["--profile", "workflow/profiles/local"]),
}


@pytest.mark.parametrize("profile", PROFILE_CMDS)
def test_profile_commands_dry_run_and_only_md_asks_for_a_gpu(root, profile):
    """The documented profile commands plan their config; the rules' own threads/mem/runtime reach
    every job; a GPU is asked for by MD jobs only, and only where one is requested (gpu profile, gres)."""
    name, args = PROFILE_CMDS[profile]
    cfg = f"configs/{name}.yaml"
    proc = _run([SNAKEMAKE, "all", "-n", "--cores", "64", "--configfile", cfg, *args], root)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    # the gpu profile batches MD (md_batch=auto): rules md_batch_<k>, several runs' complete.json each
    blocks = [("md" if r.startswith("md_batch_") else r, b) for r, b in _blocks(proc.stdout) if r != "all"]
    n_runs = sum(len(re.search(r"^    output: (.*)$", b, re.M).group(1).split(", ")) for r, b in blocks if r == "md")
    assert n_runs == _validate_runs(root, cfg)
    assert any(r.startswith("md_batch_") for r, _ in _blocks(proc.stdout)) == (profile == "gpu")
    threads = json.loads((root / "results" / name / "config.json").read_text())["threads"]
    assert threads > 1  # so that the check below can tell config threads from the default
    for rule, block in blocks:
        res = _resources(block)
        assert res.get("mem_mb", "").isdigit() and res.get("runtime", "").isdigit(), (rule, res)
        m = re.search(r"^    threads: (\d+)$", block, re.M)
        assert (int(m.group(1)) if m else 1) == (threads if rule in ("md", "relax") else 1), (rule, block)
        gpu = res.get("gpu") == "1" or "gpu" in res.get("gres", "")
        wants_gpu = rule == "md" and profile in ("gpu", "slurm-gpu-md")
        assert gpu == wants_gpu, (profile, rule, res)
        if profile.startswith("slurm"):
            assert res.get("slurm_account") == "acct"
            assert res.get("slurm_partition") == ("gpu" if wants_gpu else "cpu")
