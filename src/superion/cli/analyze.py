"""``superion analyze``: diffusion, arrhenius, rotation, density.

Each command is argparse → one library call (``write_diffusion``, ``write_arrhenius``,
``write_rotation``, ``write_density`` in :mod:`superion.analysis`; they open the trajectory with
:func:`superion.trajectory.open_trajectory` and write their files atomically) → a printed
summary. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="diffusivity, conductivity, Arrhenius fits, anion rotation, ion density from trajectories",
        description="Analyse MD trajectories with per-frame cells: run directory, .h5, any ASE trajectory (.traj, "
                    ".extxyz, XDATCAR, vasprun.xml, LAMMPS dumps; --format), DCD/XTC/TRR with --topology (MDAnalysis).",
    )
    sub = p.add_subparsers(dest="analyze_command", metavar="ANALYSIS")

    d = sub.add_parser(
        "diffusion",
        help="tracer/charge diffusivity, Nernst-Einstein conductivity, Haven ratio, active ions",
        description=(
            "Unwrap (fractional, frame to frame, NPT-safe), remove the framework centre-of-mass drift, "
            "compute the all-origin MSD of one species (FFT), choose the fit window from the data (local "
            "exponent ~1 after the cage regime; end at duration/3), classify the run (diffusive, subdiffusive, "
            "immobile against the hop length of the structure). Diffusive: GLS D with a 95 %% interval and "
            "sigma by Nernst-Einstein; otherwise an upper bound and null D. Always: MSD at a reference lag "
            "with a 95 %% interval, active fraction (Clopper-Pearson), hop rate (exact Poisson) between the "
            "starting sites and the density-maximum interstitials. Writes JSON and the curves beside it (.npz)."
        ),
    )
    d.add_argument("trajectory", metavar="TRAJ_OR_RUN")
    d.add_argument("--species", default="Na", help="mobile species (default Na)")
    d.add_argument("--temperature-K", type=float, default=None, help="temperature (K); default: the run's target")
    _input_options(d)
    d.add_argument("--fit-start-ps", type=float, default=None, help="start of the MSD fit window (ps; default from the data)")
    d.add_argument("--fit-end-ps", type=float, default=None, help="end of the MSD fit window (ps; default duration/3)")
    d.add_argument("--msd-ref-lag-ps", type=float, default=1.0,
                   help="lag of the reported MSD (ps, default 1; shorter runs: the longest lag with >= half the frames as origins)")
    d.add_argument("--active-threshold-A2", type=float, default=21.0, help="squared displacement that makes an ion active (A^2, default 21)")
    d.add_argument("--active-normalization", type=float, default=None, help="divide the active count by this (default: number of ions of the species)")
    d.add_argument("--charge", type=float, default=None, help="charge of the mobile ion in e (default from the element, Na = 1)")
    d.add_argument("--drift", default="framework", choices=("framework", "system", "none"),
                   help="centre of mass removed: non-mobile atoms (default), whole system, or none")
    d.add_argument("--json", required=True, metavar="OUT", help="result JSON (MSD curves go to OUT with .npz)")
    d.set_defaults(func=cmd_diffusion)

    a = sub.add_parser(
        "arrhenius",
        help="Arrhenius fit of diffusion results: Ea, D0, D and sigma at 300 K with 95 %% intervals",
        description="Weighted fit of ln D vs 1/(k_B T) over the diffusive 'analyze diffusion' results (>= 2 temperatures, "
                    ">= 3 for errors; non-diffusive runs are upper bounds, excluded); hop-rate Ea beside it.",
    )
    a.add_argument("results", nargs="+", metavar="RESULT.json")
    a.add_argument("--temperature-K", type=float, default=300.0, help="extrapolation target (K, default 300)")
    a.add_argument("--json", required=True, metavar="OUT")
    a.add_argument(
        "--allow-no-fit", action="store_true",
        help="write a result with null Ea (exit 0) when fewer than 2 temperatures have a resolved D (workflows)",
    )
    a.set_defaults(func=cmd_arrhenius)

    r = sub.add_parser(
        "rotation",
        help="rotation speed and C1/C2 orientational correlation times per cluster type",
        description="Per cluster type (BH4, B12H12, PS4, ...): the study's rotation speed (rad/ps) at a lag, "
                    "C1/C2 of centre-to-vertex unit vectors with fitted relaxation times. Curves go to OUT with .npz.",
    )
    r.add_argument("trajectory", metavar="TRAJ_OR_RUN")
    _input_options(r)
    r.add_argument("--rotation-lag-ps", type=float, default=1.0, help="lag of the rotation speed (ps, default 1)")
    r.add_argument("--json", required=True, metavar="OUT")
    r.set_defaults(func=cmd_rotation)

    g = sub.add_parser(
        "density",
        help="probability density of one species on a grid (.cube or CHGCAR for VESTA/OVITO)",
        description="Bin the species' positions in fractional coordinates (wrapped) over all frames; "
                    "write ions/A^3 as Gaussian cube (*.cube) or VASP CHGCAR (*CHGCAR*).",
    )
    g.add_argument("trajectory", metavar="TRAJ_OR_RUN")
    g.add_argument("--species", default="Na", help="species (default Na)")
    _input_options(g)
    g.add_argument("--grid-spacing-A", type=float, default=0.2, help="grid spacing (A, default 0.2)")
    g.add_argument("--out", required=True, metavar="FILE", help="*.cube or *CHGCAR*")
    g.set_defaults(func=cmd_density)
    register_equilibration(sub)

    p.set_defaults(func=lambda args: _help(p))


def _help(parser) -> int:
    parser.print_help()
    return 2


def _input_options(p) -> None:
    """The options that say how to read the trajectory (all three trajectory commands)."""
    p.add_argument("--frame-interval-fs", type=float, default=None,
                   help="time between frames (fs); needed for files without per-frame times (XDATCAR, LAMMPS dumps, "
                        "DCD), overrides the times of other ASE files, must agree with the exact times of run "
                        "directories, .h5, XTC and TRR")
    p.add_argument("--format", default=None, metavar="NAME",
                   help="ASE format name when the file name does not tell (extxyz, traj, vasp-xdatcar, vasp-xml, "
                        "lammps-dump-text, ...)")
    p.add_argument("--type-map", default=None, metavar="T=EL,...",
                   help="elements of numeric atom types, e.g. 1=Li,2=P,3=S (LAMMPS dumps without an element column, "
                        "topologies without elements)")
    p.add_argument("--topology", default=None, metavar="FILE",
                   help="topology of a DCD/XTC/TRR trajectory (PDB, GRO, PSF or LAMMPS data file; needs MDAnalysis)")


def _open_options(args: argparse.Namespace) -> dict:
    return {"format": args.format, "type_map": args.type_map, "topology": args.topology}


def cmd_diffusion(args: argparse.Namespace) -> int:
    from superion.analysis.diffusion import write_diffusion

    s = write_diffusion(
        args.trajectory, args.json, args.species, args.temperature_K,
        frame_interval_fs=args.frame_interval_fs, open_options=_open_options(args), drift=args.drift, charge=args.charge,
        fit_start_ps=args.fit_start_ps, fit_end_ps=args.fit_end_ps,
        active_threshold_A2=args.active_threshold_A2, active_normalization=args.active_normalization,
        msd_ref_lag_ps=args.msd_ref_lag_ps,
    )
    print(f"superion analyze diffusion: {s['species']} at {s['temperature_K']:g} K: {_diffusion_line(s)}"
          + (f" ({len(s['warnings'])} warning(s))" if s["warnings"] else ""))
    for w in s["warnings"]:
        print(f"  warning: {w}")
    return 0


def _diffusion_line(s: dict) -> str:
    """One line: regime, D [95 %] or its bound, MSD at the reference lag, active ions, hops."""
    if s["diffusivity_cm2_s"] is not None:
        lo, hi = s["diffusivity_ci95_cm2_s"] or (float("nan"), float("nan"))
        d = f"D = {s['diffusivity_cm2_s']:.3e} [{lo:.2e}, {hi:.2e}] cm2/s, sigma = {s['conductivity_mS_cm']:.3g} mS/cm"
    else:
        ub = s.get("diffusivity_upper_bound_cm2_s")
        d = "D not resolved" + (f" (D < {ub:.2e} cm2/s, 95 %)" if ub is not None else "")
    ci = s.get("msd_ref_ci95_A2")
    m = f"MSD({s['msd_ref_lag_ps']:.3g} ps) = {s['msd_ref_A2']:.3g}" + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else "") + " A^2"
    h = f", {s['n_hops']} hops" if s.get("n_hops") is not None else ""
    return f"{s['regime']}; {d}; {m}; active {s['n_active']}/{s['n_ions']}{h}"


def cmd_arrhenius(args: argparse.Namespace) -> int:
    from superion.analysis.arrhenius import write_arrhenius

    out = write_arrhenius(args.results, args.json, args.temperature_K, allow_no_fit=args.allow_no_fit)
    tag = f"{args.temperature_K:g}K"
    if not out["fitted"]:
        print(f"superion analyze arrhenius: no fit (not resolved: {out['not_resolved_reason']})")
        for w in out["warnings"]:
            print(f"  warning: {w}")
        return 0
    ea_err = out["Ea_stderr_eV"]
    sig = out.get(f"conductivity_{tag}_mS_cm")
    print(
        f"superion analyze arrhenius: Ea = {out['Ea_eV']:.3f}" + (f" +- {ea_err:.3f}" if ea_err is not None else "")
        + f" eV from {out['n_points']} points; D({tag}) = {out[f'diffusivity_{tag}_cm2_s']:.3e} cm2/s"
        + (f", sigma({tag}) = {sig:.3g} mS/cm" if sig is not None else "")
        + ("" if out["resolved"] else f" (not resolved: {out['not_resolved_reason']})")
    )
    for w in out["warnings"]:
        print(f"  warning: {w}")
    return 0


def cmd_rotation(args: argparse.Namespace) -> int:
    from superion.analysis.rotation import write_rotation

    results = write_rotation(args.trajectory, args.json, frame_interval_fs=args.frame_interval_fs,
                             lag_ps=args.rotation_lag_ps, open_options=_open_options(args))
    for ctype, r in results.items():
        c1 = r["c1_tau_ps"]
        c1s = f"{c1:.3g} ps" if c1 is not None else f"> {r['c1_tau_lower_bound_ps']:.3g} ps"
        print(f"superion analyze rotation: {ctype}: {r['n_clusters']} clusters, speed {r['rotation_speed_rad_ps']:.3g} rad/ps, C1 tau {c1s}")
    return 0


def cmd_density(args: argparse.Namespace) -> int:
    from superion.analysis.density import write_density

    res = write_density(args.trajectory, args.out, args.species, args.grid_spacing_A,
                        frame_interval_fs=args.frame_interval_fs, open_options=_open_options(args))
    print(f"superion analyze density: {res.n_ions} {res.species} over {res.n_frames} frames on a "
          f"{'x'.join(map(str, res.shape))} grid -> {args.out}")
    return 0


def register_equilibration(sub) -> None:
    """``superion analyze equilibration RUN_DIR --json OUT``: does V or the cell drift in production?"""
    e = sub.add_parser(
        "equilibration",
        help="flag a run whose volume or cell lengths drift during production (from thermo.csv)",
        description="Production part of RUN_DIR/thermo.csv: relative drift of V, a, b, c (linear fit, block-averaged "
                    "stderr), first-vs-last-third change, block-mean range, mean T vs target. Verdict equilibrated | "
                    "drifting | too short to judge, with reasons.",
    )
    e.add_argument("run_dir", metavar="RUN_DIR", help="MD run directory (or its thermo.csv)")
    e.add_argument("--threshold", action="append", default=[], metavar="NAME=VALUE",
                   help="override a threshold, e.g. volume_drift_max=0.05 (repeatable; see the JSON's thresholds)")
    e.add_argument("--json", required=True, metavar="OUT")
    e.set_defaults(func=cmd_equilibration)


def cmd_equilibration(args: argparse.Namespace) -> int:
    from superion.analysis.equilibration import summary_line, write_equilibration
    from superion.errors import SuperionError

    thresholds = {}
    for item in args.threshold:
        name, _, value = item.partition("=")
        try:
            thresholds[name.strip()] = float(value)
        except ValueError:
            raise SuperionError(f"--threshold {item!r} is not NAME=NUMBER; e.g. --threshold volume_drift_max=0.05") from None
    r = write_equilibration(args.run_dir, args.json, thresholds=thresholds)
    print(f"superion analyze equilibration: {args.run_dir}: {summary_line(r)}")
    for w in r["warnings"]:
        print(f"  warning: {w}")
    return 0
