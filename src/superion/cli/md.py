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
    p.add_argument("--temperature-K", type=float, required=True, help="target temperature (K)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Maxwell-Boltzmann velocities (default 0)")
    _run_options(p)
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (created or resumed)")
    p.set_defaults(func=cmd_md)

    b = subparsers.add_parser(
        "md-batch",
        help="run (or resume) many temperatures/mass settings/seeds of one structure in lockstep (GPU)",
        description=(
            "Run several replicas of one structure - every temperature x seed pair of --temperatures-K/--seeds, "
            "for every mass setting of --mass-scales - advanced together, with the forces of all of them from "
            "one batched model call per step. Each replica writes its own run directory OUT/NAME exactly as "
            "'superion md IN --temperature-K T --seed S --mass-scale ... --out OUT/NAME' would (same files, same "
            "settings hash: either command resumes or skips it). Rerunning resumes every replica; complete ones "
            "are skipped; a replica stopped by the stability guard fails alone (exit 3 after the others end)."
        ),
    )
    b.add_argument("structure", metavar="IN", help="CIF or prepared .extxyz (cluster labels for mass scaling)")
    b.add_argument("--temperatures-K", type=float, nargs="+", required=True, metavar="T",
                   help="target temperatures (K), one replica each (per seed pair and mass setting)")
    b.add_argument("--seeds", type=int, nargs="+", metavar="S",
                   help="velocity seeds: one for all replicas or one per temperature (default 0)")
    b.add_argument("--mass-scales", nargs="+", metavar="SETTING",
                   help="mass settings, each replicated over all temperatures: 'ref' (unscaled) or "
                        "CLUSTER=F[,CLUSTER=F...], e.g. --mass-scales ref B12H12=10 B12H12=10,BH4=10")
    _run_options(b)
    b.add_argument("--name", default="T{T}K_{mass}_seed{seed}",
                   help="run directory of a replica inside --out, from {T}, {mass} ('ref', 'B12H12x10', ...) and "
                        "{seed}; may contain '/' (default T{T}K_{mass}_seed{seed})")
    b.add_argument("--batched-graph", choices=("auto", "yes", "no"), default="auto",
                   help="forces of all replicas from one batched graph per step (yes), or one graph per replica "
                        "in the same lockstep (no: bitwise 'superion md'); auto: yes on CUDA, no on the CPU, "
                        "where a batched graph is no faster (default auto)")
    b.add_argument("--out", required=True, metavar="DIR", help="folder of the replicas' run directories")
    b.set_defaults(func=cmd_md_batch)

    e = subparsers.add_parser("export", help="write a run's trajectory in another format",
                              description="Write the production trajectory of RUN_DIR (unwrapped positions, "
                                          "cell, time_fs, velocities if stored) as extended XYZ.")
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--format", default="extxyz", choices=("extxyz",), help="output format (extxyz)")
    e.add_argument("--out", required=True, metavar="FILE")
    e.add_argument("--every", type=int, default=1, help="write every n-th frame (default 1)")
    e.set_defaults(func=cmd_export)


def _run_options(p) -> None:
    """The options ``superion md`` and ``superion md-batch`` share (everything but T, seed and --out)."""
    p.add_argument("--potential", required=True, help="model name or path (see 'superion potential')")
    p.add_argument("--models-dir", metavar="DIR", help="folder of models by name, searched before $SUPERION_MODELS")
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
    p.add_argument("--wait-for-lock", type=float, default=0.0, metavar="SECONDS",
                   help="when another superion md holds a run directory, wait up to SECONDS for it (inf: no "
                        "limit) instead of failing at once (default 0; the workflow passes a day)")


def _settings(args: argparse.Namespace, *, temperature_K: float, seed: int):
    """MDSettings from the shared options (validated)."""
    from pathlib import Path

    from superion.md import MDSettings

    if args.threads is not None and args.threads <= 0:
        raise SuperionError(f"--threads {args.threads}: give a positive number of threads")
    if not Path(args.structure).is_file():
        raise SuperionError(f"structure file {args.structure} not found; give a CIF or a prepared .extxyz")
    return MDSettings(
        temperature_K=temperature_K, steps=args.steps, equilibration_steps=args.equilibration_steps,
        timestep_fs=args.timestep_fs, ensemble=args.ensemble, pressure_bar=args.pressure_bar,
        tdamp_fs=args.tdamp_fs, pdamp_fs=args.pdamp_fs, mass_scale=list(args.mass_scale),
        save_every=args.save_every, checkpoint_every=args.checkpoint_every, seed=seed,
        save_velocities=args.save_velocities, trajectory_dtype=args.trajectory_dtype,
        max_temperature_factor=args.max_temperature_factor, min_distance_A=args.min_distance_A,
    ).validate()


def _run_kwargs(args: argparse.Namespace) -> dict:
    import math

    return dict(potential=args.potential, device=args.device, threads=args.threads,
                legacy={"auto": None, "yes": True, "no": False}[args.legacy], models_dir=args.models_dir,
                progress_every_s=args.progress_every_s or math.inf)  # 0: start and end only


def cmd_md(args: argparse.Namespace) -> int:
    from superion.md import run_md

    settings = _settings(args, temperature_K=args.temperature_K, seed=args.seed)
    from superion.locks import run_dir_lock

    # One superion md per run directory: a second one fails at once naming the holder, or (the
    # workflow: a job resubmitted while the first still runs) waits, then resumes or finds it complete.
    with run_dir_lock(args.out, wait_s=args.wait_for_lock):
        res = run_md(args.structure, args.out, settings, **_run_kwargs(args))
    if res.status == "complete":
        print(f"superion md: {res.run_dir}: {res.steps_done} steps, {res.n_frames} frames, {res.wall_s:.1f} s")
    return 0


def cmd_md_batch(args: argparse.Namespace) -> int:
    from superion.md.batch import batch_replicas, locked_replicas, parse_mass_settings, run_md_batch

    if args.mass_scale and args.mass_scales:
        raise SuperionError("give either --mass-scale (one setting for all replicas) or --mass-scales "
                            "(several settings), not both")
    seeds = args.seeds or [0]
    base = _settings(args, temperature_K=args.temperatures_K[0], seed=seeds[0])
    replicas = batch_replicas(args.out, base, args.temperatures_K, seeds,
                              parse_mass_settings(args.mass_scales) if args.mass_scales else None, name=args.name)
    with locked_replicas(replicas, wait_s=args.wait_for_lock):  # one process per run directory, as `superion md`
        res = run_md_batch(args.structure, replicas, **_run_kwargs(args),
                           batched_graph={"auto": None, "yes": True, "no": False}[args.batched_graph])
    done = len(replicas) - len(res.failed)
    print(f"superion md-batch: {done} of {len(replicas)} replicas complete under {args.out}, "
          f"{res.model_calls} batched model calls (largest batch {res.largest_batch}), {res.wall_s:.1f} s")
    res.raise_failures()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import sys

    from superion.trajectory.export import export_extxyz

    res = export_extxyz(args.run_dir, args.out, every=args.every)
    if not res.complete:  # still useful (frames before a guard stopped the run), but say so
        print(f"superion export: note: {args.run_dir} is not complete; exported the frames written so far", file=sys.stderr)
    print(f"superion export: wrote {res.n_frames} frames to {args.out}")
    return 0
