"""2 ps NVT MD at 600 K of each built structure: no explosion, clusters intact (run by hand).

Usage:
    SUPERION_MODELS=../shared/models OMP_NUM_THREADS=1 \\
    .venv/bin/python bench/structure_md_smoke.py [CIF ...] [--steps 2000] [--temperature-K 600] \\
        [--out results/structure_md_smoke] [--threads 1]

Default structures: the built CIFs in structures/ with their potential (the r2SCAN Na–B–H model for
Na–B–H systems, the universal MatPES r2SCAN model otherwise). Uses superion.md.run_md (Nosé–Hoover
NVT, 1 fs, stability guard) and checks on the last frame: cluster counts from label_clusters
unchanged, every cluster still of a known type, no atom pair < 0.7 Å. Prints one line per
structure and writes OUT/summary.json. Cost: ~0.3 s per step for 128 atoms on one CPU core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT = [
    "NaBH4_F-43m.cif",
    "Na2B12H12_Pa-3.cif",
    "Na2B10H10_Fm-3m.cif",
    "Li5PS4BH4_2_F-43m.cif",
    "oNBH_Na3BH4B12H12_Cmc21.cif",
]
NABH = {"Na", "B", "H"}


def potential_for(symbols) -> str:
    """The study's Na–B–H potential where it applies, else the universal r2SCAN model."""
    return "M3GNet-r2SCAN-NaBH" if set(symbols) <= NABH else "M3GNet-MatPES-r2SCAN-v2025.1-PES"


def smoke(path: Path, out: Path, steps: int, temperature_K: float, threads: int) -> dict:
    from ase import Atoms
    from ase.io import read

    from superion.structures.clusters import label_clusters
    from superion.md import MDSettings, run_md
    from superion.trajectory import open_trajectory

    atoms0 = read(path)
    pot = potential_for(atoms0.get_chemical_symbols())
    ref = label_clusters(atoms0).counts()
    run_dir = out / path.stem
    settings = MDSettings(temperature_K=temperature_K, steps=steps, ensemble="nvt", timestep_fs=1.0,
                          save_every=50, seed=1)
    t0 = time.perf_counter()
    row = {"structure": path.name, "potential": pot, "n_atoms": len(atoms0), "steps": steps,
           "temperature_K": temperature_K, "clusters_start": ref}
    try:
        run_md(path, run_dir, settings, potential=pot, device="cpu", threads=threads, log=lambda m: None)
    except Exception as exc:  # SimulationError from the guard = the structure is not stable
        row.update(ok=False, error=f"{type(exc).__name__}: {exc}", wall_s=time.perf_counter() - t0)
        return row
    traj = open_trajectory(run_dir)
    last = traj.n_frames - 1
    pos = traj.positions(slice(last, last + 1))[0]
    cell = traj.cells(slice(last, last + 1))[0]
    final = Atoms(traj.symbols, positions=pos, cell=cell, pbc=True)
    final.wrap()
    labels = label_clusters(final)
    counts = labels.counts()
    d = final.get_all_distances(mic=True)
    np.fill_diagonal(d, np.inf)
    # mobile-ion squared displacement over the run (unwrapped positions)
    first = traj.positions(slice(0, 1))[0]
    cat = [i for i, s in enumerate(traj.symbols) if s in ("Na", "Li")]
    sd = ((pos[cat] - first[cat]) ** 2).sum(axis=1) if cat else np.zeros(0)
    import csv

    with open(run_dir / "thermo.csv") as fh:
        temps = [float(r["T_K"]) for r in csv.DictReader(fh) if r.get("phase", "production") == "production"]
    row.update(
        clusters_end=counts,
        clusters_intact=counts == ref,
        min_distance_A=float(d.min()),
        # second half only: the run starts from Maxwell–Boltzmann velocities at a static structure,
        # so the first ~0.3 ps sit near T/2 while the thermostat pumps energy in
        mean_T_K=float(np.mean(temps[len(temps) // 2:])) if temps else None,
        cation_sd_A2={"mean": float(sd.mean()) if sd.size else None, "max": float(sd.max()) if sd.size else None},
        wall_s=time.perf_counter() - t0,
    )
    row["ok"] = bool(row["clusters_intact"] and row["min_distance_A"] > 0.7)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cifs", nargs="*", help="structures (default: the built CIFs in structures/)")
    ap.add_argument("--steps", type=int, default=2000, help="MD steps of 1 fs (default 2000 = 2 ps)")
    ap.add_argument("--temperature-K", type=float, default=600.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "results" / "structure_md_smoke"))
    args = ap.parse_args(argv)
    paths = [Path(p) for p in args.cifs] or [REPO / "structures" / n for n in DEFAULT]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for p in paths:
        row = smoke(p, out, args.steps, args.temperature_K, args.threads)
        rows.append(row)
        print(f"{p.name}: {'OK' if row.get('ok') else 'FAIL'} "
              + (f"clusters {row.get('clusters_end')} (start {row['clusters_start']}), min d {row.get('min_distance_A', 0):.2f} Å, "
                 f"<T>(2nd half) {row.get('mean_T_K') or 0:.0f} K, cation SD mean/max {row['cation_sd_A2']['mean']:.2f}/"
                 f"{row['cation_sd_A2']['max']:.2f} Å², {row['wall_s']:.0f} s" if "error" not in row else row["error"]),
              flush=True)
        (out / "summary.json").write_text(json.dumps(rows, indent=2))
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
