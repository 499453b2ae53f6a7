"""Batched vs single MD with the real model: how far a replica of a batch drifts from ``superion md``.

Runs R replicas (temperatures spread over 400-800 K, one seed each) of a structure with
``run_md_batch`` (one batched M3GNet call per step), then the single run (``run_md``) of the
replicas named by ``--compare``, each with the same settings, and compares the stored
trajectories (float64 frames, every ``--save-every`` steps): max |Δx| over all frames and atoms (Å),
max |Δcell| (Å), whether they are bitwise equal, and the first frame that differs.

    .venv/bin/python bench/md_batch_parity.py --device cpu --steps 1000 [--ensembles npt,nvt] [--json F]

With ``--batched-graph no`` (md-batch's CPU default) the replicas' graphs are evaluated one at
a time in the lockstep: bitwise the single run. With one batched graph (``yes``) the forces of
some atoms differ by 1-2 float32 ulp (superion.potential.batch) and the chaotic dynamics
amplify that to Å within 1000 steps. On CUDA nothing is bitwise.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SUPERION_SHARED", REPO.parent / "shared"))
MODEL = "M3GNet-r2SCAN-NaBH"
NABH4 = SHARED / "structures" / "approximants" / "NaBH4_P-421c-approx.cif"


def compare(a_dir: Path, b_dir: Path) -> dict:
    """max |Δx|, |Δcell| (Å) of two run directories' trajectories, bitwise flag, first differing frame."""
    from superion.trajectory import open_trajectory

    with open_trajectory(a_dir) as a, open_trajectory(b_dir) as b:
        if list(a.steps) != list(b.steps):
            raise SystemExit(f"{a_dir} and {b_dir} hold different steps")
        xa, xb, ca, cb = a.positions(), b.positions(), a.cells(), b.cells()
        steps = np.asarray(a.steps)
    dx = np.abs(xa - xb).reshape(len(steps), -1).max(axis=1)
    differ = np.nonzero(dx > 0)[0]
    return {"frames": int(len(steps)), "last_step": int(steps[-1]), "max_dx_A": float(dx.max()),
            "max_dx_last_frame_A": float(dx[-1]), "max_dcell_A": float(np.abs(ca - cb).max()),
            "bitwise": bool(np.array_equal(xa, xb) and np.array_equal(ca, cb)),
            "first_differing_step": int(steps[differ[0]]) if len(differ) else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--structure", default=str(NABH4), help="structure (default: NaBH4 approximant, 24 atoms)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--save-every", type=int, default=50)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--compare", default="1", help="replica indices to rerun alone, e.g. 0,1,2 (default 1)")
    ap.add_argument("--ensembles", default="npt", help="comma-separated: npt, npt_iso, nvt, nve")
    ap.add_argument("--timestep-fs", type=float, default=1.0)
    ap.add_argument("--batched-graph", default="yes", choices=("yes", "no", "auto"),
                    help="as superion md-batch --batched-graph (default yes: the one-graph path)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    from superion.md import MDSettings, run_md
    from superion.md.batch import batch_replicas, run_md_batch

    tmp = Path(tempfile.mkdtemp(prefix="md_batch_parity_"))
    temps = np.linspace(400, 800, args.replicas) if args.replicas > 1 else [600.0]
    rows = []
    for ensemble in args.ensembles.split(","):
        base = MDSettings(temperature_K=600, steps=args.steps, ensemble=ensemble, timestep_fs=args.timestep_fs,
                          save_every=args.save_every, checkpoint_every=args.steps, trajectory_dtype="float64",
                          save_velocities=False)
        reps = batch_replicas(tmp / ensemble / "batch", base, temps, seeds=list(range(1, args.replicas + 1)))
        kw = dict(potential=MODEL, device=args.device, threads=args.threads, log=lambda *a: None,
                  progress_every_s=None)
        t0 = time.perf_counter()
        res = run_md_batch(args.structure, reps, **kw,
                           batched_graph={"auto": None, "yes": True, "no": False}[args.batched_graph])
        res.raise_failures()
        t_batch = time.perf_counter() - t0
        for k in (int(x) for x in args.compare.split(",")):
            single = tmp / ensemble / "single" / reps[k].out_dir.name
            run_md(args.structure, single, reps[k].settings, **kw)
            row = {"ensemble": ensemble, "device": args.device, "batched_graph": args.batched_graph,
                   "replicas": args.replicas, "replica": k,
                   "temperature_K": float(temps[k]), "steps": args.steps, "batch_wall_s": round(t_batch, 1),
                   **compare(single, reps[k].out_dir)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
