"""``superion md`` (run/resume one MD simulation) and ``superion export`` (trajectory → extxyz)."""

from __future__ import annotations

import argparse

from superion.errors import SuperionError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "md",
        help="run (or resume) one NPT/NVT MD simulation into a run directory",
        description=(
            "Run one MD simulation (one structure, temperature, mass setting). Rerunning the same command "
            "resumes from the last checkpoint; a completed run is left alone. Exit 3 when the run went "
            "unphysical (stability guard). Ensembles: npt = anisotropic MTK (default), npt_iso = isotropic "
            "MTK, nvt = Nose-Hoover chain, nve = velocity Verlet."
        ),
    )
    p.add_argument("structure", metavar="IN", help="CIF or prepared .extxyz (cluster labels for mass scaling)")
    p.add_argument("--potential", required=True, help="model name or path (see 'superion potential')")
    p.add_argument("--models-dir", metavar="DIR", help="folder of models by name, searched before $SUPERION_MODELS")
    p.add_argument("--temperature-K", type=float, required=True, help="target temperature (K)")
    p.add_argument("--steps", type=int, required=True, help="production steps (trajectory frames come from these)")
    p.add_argument("--equilibration-steps", type=int, default=0, help="steps before production (default 0)")
    p.add_argument("--timestep-fs", type=float, default=1.0, help="time step (fs, default 1)")
    p.add_argument("--ensemble", default="npt", help="npt (default) | npt_iso | nvt | nve")
    p.add_argument("--pressure-bar", type=float, default=1.0, help="external pressure for npt (bar, default 1)")
    p.add_argument("--tdamp-fs", type=float, default=100.0, help="thermostat time constant (fs, default 100)")
    p.add_argument("--pdamp-fs", type=float, default=1000.0, help="barostat time constant (fs, default 1000)")
    p.add_argument("--mass-scale", action="append", default=[], metavar="CLUSTER=F",
                   help="multiply masses of all atoms of that cluster type by F (repeatable), e.g. B12H12=5")
    p.add_argument("--save-every", type=int, default=10, help="steps between frames/thermo rows (default 10)")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="steps between checkpoints (multiple of --save-every; default ~100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Maxwell-Boltzmann velocities (default 0)")
    p.add_argument("--save-velocities", action="store_true", help="also store velocities in the trajectory")
    p.add_argument("--trajectory-dtype", default="float32", choices=("float32", "float64"),
                   help="precision of stored positions/velocities (default float32)")
    p.add_argument("--max-temperature-factor", type=float, default=3.0,
                   help="stop (exit 3) when T exceeds this multiple of the target (default 3)")
    p.add_argument("--min-distance-A", type=float, default=0.5,
                   help="stop (exit 3) when two atoms come closer than this (A, default 0.5)")
    p.add_argument("--legacy", default="auto", choices=("auto", "yes", "no"),
                   help="M3GNet aggregation of models trained with matgl <= 2.2 (auto: decided from the checkpoint)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="torch device")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (fixed count = reproducible)")
    p.add_argument("--progress-every-s", type=float, default=300.0, metavar="S",
                   help="when stderr is not a terminal (job logs): a progress line (step, ps, ns/day, ETA) "
                        "every S seconds of wall time (default 300; 0 = start and end only)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (created or resumed)")
    p.add_argument("--wait-for-lock", type=float, default=0.0, metavar="SECONDS",
                   help="when another superion md holds RUN_DIR, wait up to SECONDS for it (inf: no limit) "
                        "instead of failing at once (default 0; the workflow passes a day)")
    p.set_defaults(func=cmd_md)

    e = subparsers.add_parser("export", help="write a run's trajectory in another format",
                              description="Write the production trajectory of RUN_DIR (unwrapped positions, "
                                          "cell, time_fs, velocities if stored) as extended XYZ.")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--format", default="extxyz", choices=("extxyz",), help="output format (extxyz)")
    e.add_argument("--out", required=True, metavar="FILE")
    e.add_argument("--every", type=int, default=1, help="write every n-th frame (default 1)")
    e.set_defaults(func=cmd_export)


def cmd_md(args: argparse.Namespace) -> int:
    import math
    from pathlib import Path

    from superion.md import MDSettings, run_md

    if args.threads is not None and args.threads <= 0:
        raise SuperionError(f"--threads {args.threads}: give a positive number of threads")
    if not Path(args.structure).is_file():
        raise SuperionError(f"structure file {args.structure} not found; give a CIF or a prepared .extxyz")
    settings = MDSettings(
        temperature_K=args.temperature_K, steps=args.steps, equilibration_steps=args.equilibration_steps,
        timestep_fs=args.timestep_fs, ensemble=args.ensemble, pressure_bar=args.pressure_bar,
        tdamp_fs=args.tdamp_fs, pdamp_fs=args.pdamp_fs, mass_scale=list(args.mass_scale),
        save_every=args.save_every, checkpoint_every=args.checkpoint_every, seed=args.seed,
        save_velocities=args.save_velocities, trajectory_dtype=args.trajectory_dtype,
        max_temperature_factor=args.max_temperature_factor, min_distance_A=args.min_distance_A,
    ).validate()
    legacy = {"auto": None, "yes": True, "no": False}[args.legacy]
    from superion.locks import run_dir_lock

    # One superion md per run directory: a second one fails at once naming the holder, or (the
    # workflow: a job resubmitted while the first still runs) waits, then resumes or finds it complete.
    with run_dir_lock(args.out, wait_s=args.wait_for_lock):
        res = run_md(args.structure, args.out, settings, potential=args.potential, device=args.device,
                     threads=args.threads, legacy=legacy, models_dir=args.models_dir,
                     progress_every_s=args.progress_every_s or math.inf)  # 0: start and end only
    if res.status == "complete":
        print(f"superion md: {res.run_dir}: {res.steps_done} steps, {res.n_frames} frames, {res.wall_s:.1f} s")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import sys

    from superion.trajectory.export import export_extxyz

    res = export_extxyz(args.run_dir, args.out, every=args.every)
    if not res.complete:  # still useful (frames before a guard stopped the run), but say so
        print(f"superion export: note: {args.run_dir} is not complete; exported the frames written so far", file=sys.stderr)
    print(f"superion export: wrote {res.n_frames} frames to {args.out}")
    return 0
