"""Figures of a sweep (matplotlib, Agg): each written as PDF and SVG (vector) and PNG.

All figures are drawn from the tables (``summary.csv``, ``diffusion.csv``) and the per-run
analysis files they point to (MSD ``.npz``, density ``.cube``) — never from trajectories, so
regenerating a figure reruns no MD. Units: D in cm²/s, σ in mS/cm, Ea in eV, T in K, rotation
speed in rad/ps, MSD in Å², lag in ps.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Callable

from superion import layout
from superion.workflow import config as sc
from superion.atomic import atomic_path
from superion.errors import SuperionError
from superion.files import read_npz
from superion.report.tables import read_csv
from superion.report.thermo import thermo_figure
from superion.units import K_B_EV_K as KB_EV_K


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 9, "legend.fontsize": 7, "svg.fonttype": "none",
                         "pdf.fonttype": 42})
    return plt


def save_figure(fig, stem: str | Path, dpi: int = 200) -> list[Path]:
    """Write ``stem``.pdf/.svg/.png atomically; return the paths."""
    stem = Path(stem)
    out = []
    for ext in layout.FIGURE_FORMATS:
        path = stem.with_name(stem.name + "." + ext)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=dpi)
        out.append(path)
    return out


def _footnote(fig, rows: list[dict]) -> None:
    """Noise warning from the table's ``warnings`` column (short runs etc.) and a note on bounds."""
    prod = sorted({r.get("production_ps") for r in rows if r.get("production_ps") is not None})
    notes = []
    if prod and min(prod) < 100:
        notes.append(f"Short MD ({', '.join(f'{p:g}' for p in prod)} ps): noisy.")
    if any(r.get("regime") in ("subdiffusive", "immobile") for r in rows):
        notes.append("Non-diffusive runs: D is an upper bound only.")
    if any(r.get("warnings") for r in rows):
        notes.append("See warnings in summary.csv.")
    if notes:
        frac = min(0.3, 0.28 / fig.get_size_inches()[1])  # ~0.28 inch strip at the bottom
        engine = fig.get_layout_engine()
        if engine is not None and hasattr(engine, "set"):
            engine.set(rect=(0, frac, 1, 1 - frac))
        fig.text(0.01, 0.005, " ".join(notes), fontsize=6.5, color="firebrick", ha="left", va="bottom")


def _group_key(r: dict) -> tuple[str, str]:
    return (str(r["system"]), str(r["mass_setting"]))


def _label(r: dict) -> str:
    lab = str(r.get("label") or r["system"])
    return lab if r.get("mass_scaling") in (None, "none") else f"{lab}, {r['mass_scaling']}"


def _colors(n: int):
    plt = _plt()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=8, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _grid(plt, n: int, w: float = 3.4, h: float = 2.8):
    ncols = min(max(n, 1), 3)
    nrows = (max(n, 1) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows + 0.3), squeeze=False, layout="constrained")
    return fig, [ax for row in axes for ax in row]


# --------------------------------------------------------------------------------------


def _resolved(s: dict) -> bool:
    """The summary row's ``resolved`` column (tables write true/false; older tables: a fitted Ea)."""
    v = s.get("resolved")
    if v is None or v == "":
        return s.get("Ea_eV") is not None
    return str(v).lower() in ("true", "1", "1.0")


def _bound_arrows(ax, x, ub, color) -> None:
    """Upper bounds as downward arrows from a bar at the bound (log axes: a factor 3 long)."""
    for xi, u in zip(x, ub):
        ax.plot([xi], [u], marker="_", ms=9, mew=1.5, color=color, ls="none")
        ax.annotate("", xy=(xi, u / 3.0), xytext=(xi, u), arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.0,
                                                                       "mutation_scale": 8, "shrinkA": 0, "shrinkB": 0})


def arrhenius_figure(cfg: dict, summary: list[dict], runs: list[dict]):
    """log D vs 1000/T: diffusive runs with 95 % intervals, non-diffusive runs as upper-bound arrows,
    the Arrhenius line (and its 300 K extrapolation) only where the fit is resolved."""
    import numpy as np

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    by_group = defaultdict(list)
    for r in runs:
        by_group[_group_key(r)].append(r)
    colors = _colors(len(summary))
    n_bounds, plotted, reasons = 0, 0, []
    ys = []
    ys_groups: list = []
    for color, s in zip(colors, summary):
        ys_groups.append(s)
        pts = by_group.get(_group_key(s), [])
        num = lambda key: np.array([p[key] if isinstance(p.get(key), float) else np.nan for p in pts], float)  # noqa: E731
        T, D = num("temperature_K"), num("diffusivity_cm2_s")
        lo, hi, se, ub = num("diffusivity_ci95_low_cm2_s"), num("diffusivity_ci95_high_cm2_s"), num("diffusivity_stderr_cm2_s"), num("diffusivity_upper_bound_cm2_s")
        ok = np.isfinite(D) & (D > 0)
        lo = np.where(np.isfinite(lo), lo, D - np.nan_to_num(se))
        hi = np.where(np.isfinite(hi), hi, D + np.nan_to_num(se))
        resolved = _resolved(s)
        ea, d0 = s.get("Ea_eV"), s.get("D0_cm2_s")
        draw_fit = resolved and isinstance(ea, float) and isinstance(d0, float) and d0 > 0 and bool(ok.any())
        # Ea goes into the legend: labels beside the points collide with them
        label = _label(s) + (f": Ea = {s.get('Ea_text_eV') or f'{ea:.2f}'} eV" if draw_fit else "" if resolved else " (fit not resolved)")
        if ok.any():
            yerr = [np.clip(D[ok] - lo[ok], 0, D[ok] * 0.999), np.clip(hi[ok] - D[ok], 0, None)]
            ax.errorbar(1000.0 / T[ok], D[ok], yerr=yerr, fmt="o", ms=4, capsize=2, color=color, label=label)
            ys += list(D[ok])
            plotted += 1
            label = None
        bnd = ~ok & np.isfinite(ub) & (ub > 0)
        if bnd.any():
            # groups side by side at one T (arrows of equal bounds would hide each other)
            shift = 0.004 * (len(ys_groups) - 1 - (len(summary) - 1) / 2)
            _bound_arrows(ax, 1000.0 / T[bnd] + shift, ub[bnd], color)
            ax.plot([], [], marker="$\\downarrow$", ls="none", ms=7, color=color, label=label)
            ys += list(ub[bnd]) + list(ub[bnd] / 3.0)
            n_bounds += int(bnd.sum())
            plotted += 1
        if draw_fit:
            t_fit = np.linspace(T[ok].min(), T[ok].max(), 50)
            t_ext = np.linspace(300.0, T[ok].min(), 50)
            ax.plot(1000.0 / t_fit, d0 * np.exp(-ea / (KB_EV_K * t_fit)), "-", color=color, lw=1.2)
            ax.plot(1000.0 / t_ext, d0 * np.exp(-ea / (KB_EV_K * t_ext)), "--", color=color, lw=0.8)
            ys.append(d0 * np.exp(-ea / (KB_EV_K * 300.0)))
        elif not resolved:
            reasons.append(f"{_label(s)}: {s.get('not_resolved_reason') or 'no fit'}")
    if plotted == 0:
        _empty(ax, "no diffusivity or upper bound to plot")
    else:
        ax.set_yscale("log")
        if ys:
            ax.set_ylim(min(ys) / 3.0, max(ys) * 3.0)
        lo, hi = ax.get_xlim()
        if hi - lo < 0.2:  # one temperature (points side by side): keep a readable 1000/T span
            mid = 0.5 * (lo + hi)
            ax.set_xlim(mid - 0.1, mid + 0.1)
        ax.set_xlabel("1000 / T (1/K)")
        ax.set_ylabel("D (cm²/s)")
        ax.legend(loc="lower left", frameon=False, fontsize=6.5)
        sec = ax.secondary_xaxis("top", functions=(lambda x: 1000.0 / np.maximum(x, 1e-9), lambda t: 1000.0 / np.maximum(t, 1e-9)))
        sec.set_xlabel("T (K)")
    title = "Arrhenius plot: points 95 % CI, arrows = upper bounds (not diffusive)"
    if any(_resolved(s) for s in summary):
        title += "\nfit solid, extrapolation to 300 K dashed (resolved fits only)"
    ax.set_title(title)
    if reasons:
        import textwrap

        ax.text(0.99, 0.99, "not resolved:\n" + "\n".join(textwrap.fill(r, 60) for r in reasons[:6]), transform=ax.transAxes,
                ha="right", va="top", fontsize=6, color="0.3")
    _footnote(fig, summary + runs)
    return fig


def _mass_series(summary: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """(system, scaled set) -> rows sorted by factor, the unscaled reference included at factor 1."""
    by_sys = defaultdict(list)
    for r in summary:
        by_sys[str(r["system"])].append(r)
    out = {}
    for system, rows in by_sys.items():
        refs = [r for r in rows if r["mass_series"] == "ref"]
        if all(r["mass_series"] == "ref" for r in rows):  # unscaled only: one point at factor 1
            out[(system, "unscaled")] = rows
            continue
        for series in sorted({r["mass_series"] for r in rows if r["mass_series"] != "ref"}):
            rs = refs + [r for r in rows if r["mass_series"] == series]
            out[(system, series)] = sorted(rs, key=lambda r: r["mass_factor"])
    return out


def mass_scaling_figure(cfg: dict, summary: list[dict], runs: list[dict]):
    """σ(300 K) with 95 % CI, Ea ± stderr, MSD at the reference lag and active fraction against the
    anion mass factor. σ and Ea only where the Arrhenius fit is resolved (others marked "n.r." at
    the axis bottom); lines join a series only when every point of it is resolved."""
    import numpy as np

    plt = _plt()
    fig, axes = plt.subplots(1, 4, figsize=(13.0, 3.5), layout="constrained")
    series = _mass_series(summary)
    if not series or all(name == "unscaled" for _, name in series):
        # one mass setting per system: nothing to draw against the mass factor (no trend from one point)
        _empty(axes[0], "no results" if not series else
               "no anion mass scaling in this sweep\n(one mass setting per system;\nsee configs/workstation.yaml)")
        for ax in axes[1:]:
            ax.set_axis_off()
        _footnote(fig, summary)
        return fig
    colors = _colors(len(series))
    val = lambda rows, key: np.array([r[key] if isinstance(r.get(key), float) else np.nan for r in rows], float)  # noqa: E731
    unresolved = set()
    for color, ((system, name), rows) in zip(colors, series.items()):
        lab = f"{rows[0].get('label') or system}: {name}"
        f = val(rows, "mass_factor")
        res = np.array([_resolved(r) for r in rows])
        for ax, key in ((axes[0], "sigma_300K_mS_cm"), (axes[1], "Ea_eV")):
            y = val(rows, key)
            ok = res & np.isfinite(y) & ((y > 0) if key.startswith("sigma") else True)
            if key.startswith("sigma"):
                lo, hi = val(rows, "sigma_300K_ci95_low_mS_cm"), val(rows, "sigma_300K_ci95_high_mS_cm")
                yerr = [np.nan_to_num(np.clip(y - lo, 0, y * 0.999))[ok], np.nan_to_num(np.clip(hi - y, 0, None))[ok]]
            else:
                yerr = np.nan_to_num(val(rows, "Ea_stderr_eV"))[ok]
            if ok.any():
                ax.errorbar(f[ok], y[ok], yerr=yerr, fmt="o-" if ok.all() else "o", ms=4, capsize=2, color=color, label=lab)
            for fx in f[~ok]:
                ax.annotate("× n.r.", (fx, 0.0), xycoords=("data", "axes fraction"), xytext=(0, 3), textcoords="offset points",
                            ha="center", fontsize=6.5, color=color)
            if (~ok).any():
                ax.plot([], [], "x", color=color, label=f"{lab}: not resolved")
                unresolved.add(lab)
        temps = sorted({k for r in rows for k in r if k.startswith("msd_ref_") and k.endswith("K_A2")},
                       key=lambda k: float(k[len("msd_ref_"):-len("K_A2")]))
        for j, key in enumerate(temps):
            y = val(rows, key)
            alpha = 0.35 + 0.65 * (j + 1) / len(temps)
            axes[2].plot(f, y, "o-", ms=3, color=color, alpha=alpha, label=f"{lab}, {key[len('msd_ref_'):-len('K_A2')]} K")
        temps = sorted({k for r in rows for k in r if k.startswith("active_fraction_") and k.endswith("K")},
                       key=lambda k: float(k[len("active_fraction_"):-1]))
        for j, key in enumerate(temps):
            y = val(rows, key)
            alpha = 0.35 + 0.65 * (j + 1) / len(temps)
            axes[3].plot(f, y, "o-", ms=3, color=color, alpha=alpha,
                         label=f"{lab}, {key[len('active_fraction_'):-1]} K")
    for ax, what in ((axes[0], "σ(300 K)"), (axes[1], "Ea")):
        if not ax.containers:  # nothing resolved: say so instead of an empty frame with meaningless ticks
            ax.text(0.5, 0.5, f"{what} not resolved\nfor any mass setting\n(see not_resolved_reason in summary.csv)",
                    ha="center", va="center", transform=ax.transAxes, fontsize=7, color="0.3")
            ax.set_yticks([])
    lag = sorted({r["msd_ref_lag_ps"] for r in runs if isinstance(r.get("msd_ref_lag_ps"), float)})
    lag_txt = f"{lag[0]:g} ps" if len(lag) == 1 else "reference lag"
    if any(ln.get_ydata().size and np.nanmax(ln.get_ydata()) > 0 for ln in axes[0].get_lines()):
        axes[0].set_yscale("log")
    axes[0].set_ylabel("σ(300 K) (mS/cm), 95 % CI")
    axes[1].set_ylabel("Ea (eV)")
    axes[2].set_ylabel(f"MSD({lag_txt}) (Å²)")
    axes[3].set_ylabel("active fraction")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("anion mass factor")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(frameon=False, fontsize=6)
    axes[0].set_title("extrapolated conductivity" + (" (n.r. = not resolved)" if unresolved else ""))
    axes[1].set_title("activation energy")
    axes[2].set_title(f"mean squared displacement at {lag_txt}")
    axes[3].set_title("active mobile ions (per T)")
    _footnote(fig, summary + runs)
    return fig


def rotation_figure(cfg: dict, summary: list[dict], runs: list[dict]):
    """Rotation speed of each anion type against the mass factor (per system, series, T)."""
    import numpy as np

    plt = _plt()
    import re

    pat = re.compile(r"^rotation_(.+)_([0-9.]+)K_rad_ps$")
    cols = {k: pat.match(k) for r in summary for k in r}
    cols = {k: (m.group(1), float(m.group(2))) for k, m in cols.items() if m}
    ctypes = sorted({c for c, _ in cols.values()})
    fig, axes = _grid(plt, max(len(ctypes), 1))
    if not ctypes:
        _empty(axes[0], "no anion rotation results (no molecular anions?)")
        _footnote(fig, summary)
        return fig
    series = _mass_series(summary)
    colors = _colors(len(series))
    for ax, ctype in zip(axes, ctypes):
        keys = sorted([k for k, (c, _) in cols.items() if c == ctype], key=lambda k: cols[k][1])
        for color, ((system, name), rows) in zip(colors, series.items()):
            f = np.array([r["mass_factor"] for r in rows], float)
            for j, key in enumerate(keys):
                y = np.array([r.get(key) if r.get(key) is not None else np.nan for r in rows], float)
                if not np.isfinite(y).any():
                    continue
                alpha = 0.35 + 0.65 * (j + 1) / len(keys)
                ax.plot(f, y, "o-", ms=3, color=color, alpha=alpha,
                        label=f"{rows[0].get('label') or system}: {name}, {cols[key][1]:g} K")
        ax.set_title(f"{ctype} rotation")
        ax.set_xlabel("anion mass factor")
        ax.set_ylabel("rotation speed (rad/ps)")
        if len({r["mass_factor"] for r in summary}) > 1:
            ax.set_xscale("log")
        ax.legend(frameon=False, fontsize=6)
    for ax in axes[len(ctypes):]:
        ax.set_visible(False)
    _footnote(fig, summary)
    return fig


def msd_figure(cfg: dict, summary: list[dict], runs: list[dict]):
    """Mobile-ion MSD vs lag (log-log), one panel per (system, mass setting), one curve per T; the
    fit window is drawn thick on each curve, the local exponent β(t) on the right axis, one hop
    length squared (h², from the structure) as a dotted line."""
    import numpy as np

    plt = _plt()
    fig, axes = _grid(plt, max(len(summary), 1), w=3.8, h=3.0)
    if not summary:
        _empty(axes[0], "no runs")
    for ax, s in zip(axes, summary):
        rows = [r for r in runs if _group_key(r) == _group_key(s)]
        first_seed = min((r["seed"] for r in rows), default=None)
        rows = sorted([r for r in rows if r["seed"] == first_seed], key=lambda r: r["temperature_K"])
        colors = plt.get_cmap("plasma")(np.linspace(0.1, 0.85, max(len(rows), 1)))
        bx = None
        for color, r in zip(colors, rows):
            path = Path(str(r.get("msd_npz") or ""))
            if not path.is_file():
                continue
            z = read_npz(path, fix="delete it and rerun the workflow (snakemake ...)", keys=("lag_ps", "msd_A2"))
            t, msd = np.asarray(z["lag_ps"]), np.asarray(z["msd_A2"])
            beta = (np.asarray(z["beta_lag_ps"]), np.asarray(z["beta"])) if "beta" in z else None
            sel = t > 0
            regime = r.get("regime")
            ax.plot(t[sel], msd[sel], color=color, lw=1.1,
                    label=f"{r['temperature_K']:g} K" + (f" ({regime})" if isinstance(regime, str) and regime != "unclassified" else ""))
            t0, t1 = r.get("fit_start_ps"), r.get("fit_end_ps")
            if isinstance(t0, float) and isinstance(t1, float):
                w = sel & (t >= t0) & (t <= t1)
                ax.plot(t[w], msd[w], color=color, lw=3.5, alpha=0.35, solid_capstyle="butt")
            m, lo, hi, lag = (r.get(k) for k in ("msd_ref_A2", "msd_ref_ci95_low_A2", "msd_ref_ci95_high_A2", "msd_ref_lag_ps"))
            if all(isinstance(v, float) for v in (m, lo, hi, lag)):  # the resolved number: MSD at the reference lag
                ax.errorbar([lag], [m], yerr=[[m - lo], [hi - m]], fmt="s", ms=4, capsize=3, color=color, zorder=5,
                            label=f"MSD({lag:g} ps) = {m:.2g} [{lo:.2g}, {hi:.2g}] Å²")
            if beta is not None and len(beta[0]):
                bx = bx or ax.twinx()
                bx.plot(beta[0], beta[1], color=color, lw=0.8, ls="--", alpha=0.8)
        h = next((r["hop_length_A"] for r in rows if isinstance(r.get("hop_length_A"), float)), None)
        if h:
            ax.axhline(h * h, color="0.4", ls=":", lw=0.8, label=f"one hop h² = {h * h:.3g} Å²")
        if ax.get_lines():
            from matplotlib.ticker import NullFormatter

            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # short runs span < 1 decade: minor labels collide
        if bx is not None:
            bx.axhline(1.0, color="0.6", lw=0.6, ls="--")
            bx.set_ylim(0, 2.2)
            bx.set_ylabel("β = dlnMSD/dlnt (dashed)", fontsize=7)
            bx.tick_params(labelsize=7)
        ax.set_title(_label(s) + "\n(thick: fit window)", fontsize=8)
        ax.set_xlabel("lag time (ps)")
        ax.set_ylabel("MSD (Å²)")
        # on the top-most axes (the β twin draws over the MSD axes), upper left: MSD curves rise to the right
        h_, l_ = ax.get_legend_handles_labels()
        (bx or ax).legend(h_, l_, fontsize=6, loc="upper left", framealpha=0.8, edgecolor="none")
    for ax in axes[len(summary):]:
        ax.set_visible(False)
    _footnote(fig, summary + runs)
    return fig


def density_figure(cfg: dict, summary: list[dict], runs: list[dict]):
    """Mobile-ion density projected along c (unscaled masses, highest T, first seed)."""
    import numpy as np

    plt = _plt()
    systems = list(dict.fromkeys(str(r["system"]) for r in summary))
    fig, axes = _grid(plt, max(len(systems), 1), w=3.6, h=3.2)
    if not cfg.get("analysis", {}).get("density", True):
        _empty(axes[0], "density analysis disabled in this sweep (analysis.density: false)")
        for ax in axes[1:]:
            ax.set_visible(False)
        return fig
    for ax, system in zip(axes, systems):
        rows = [r for r in runs if str(r["system"]) == system]
        ref = [r for r in rows if r["mass_series"] == "ref"] or rows
        best = sorted(ref, key=lambda r: (-r["temperature_K"], r["seed"]))
        path = Path(str(best[0].get("density_cube") or "")) if best else Path("")
        if not best or not path.is_file():
            _empty(ax, f"{system}: no density file")
            continue
        data, atoms = _read_cube(path)
        from ase.units import Bohr

        proj = data.sum(axis=2) / Bohr**3  # the cube holds ions/Bohr^3 (its convention)
        cell = atoms.cell.cellpar()
        im = ax.imshow(proj.T, origin="lower", extent=(0, cell[0], 0, cell[1]), cmap="magma", aspect="equal")
        fig.colorbar(im, ax=ax, shrink=0.8, label="density summed along c (ions/Å³)")
        r0 = best[0]
        ax.set_title(f"{r0.get('label') or system}, {r0['temperature_K']:g} K")
        ax.set_xlabel("a (Å)")
        ax.set_ylabel("b (Å)")
    for ax in axes[len(systems):]:
        ax.set_visible(False)
    _footnote(fig, summary)
    return fig


def _read_cube(path: Path):
    try:
        from ase.io.cube import read_cube_data

        return read_cube_data(str(path))
    except Exception as exc:
        raise SuperionError(f"cannot read density cube {path}: {exc}") from None


FIGURES: dict[str, Callable] = {
    "arrhenius": arrhenius_figure,
    "mass_scaling": mass_scaling_figure,
    "rotation": rotation_figure,
    "msd": msd_figure,
    "density": density_figure,
    "thermo": thermo_figure,
}
assert set(FIGURES) == set(layout.FIGURE_KINDS)


def make_figure(kind: str, cfg: dict, results: Path | None = None, out: Path | None = None) -> list[Path]:
    """Draw figure ``kind`` from the sweep's tables and write PDF/SVG/PNG; return the paths."""
    if kind not in FIGURES:
        raise SuperionError(f"unknown figure {kind!r}; choose from {', '.join(FIGURES)}")
    res = Path(results) if results is not None else layout.results_dir(cfg)
    summary = read_csv(res / layout.LAYOUT["summary"])
    runs = read_csv(res / layout.LAYOUT["diffusion"])
    plt = _plt()
    fig = FIGURES[kind](cfg, summary, runs)
    try:
        return save_figure(fig, out or res / layout.LAYOUT["figure"].format(kind=kind), dpi=cfg.get("figures", {}).get("dpi", 200))
    finally:
        plt.close(fig)
