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
    """Noise warning from the table's ``warnings`` column (short runs etc.)."""
    prod = sorted({r.get("production_ps") for r in rows if r.get("production_ps") is not None})
    notes = []
    if prod and min(prod) < 100:
        notes.append(f"Short MD ({', '.join(f'{p:g}' for p in prod)} ps): noisy.")
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


def arrhenius_figure(cfg: dict, summary: list[dict], runs: list[dict]):
    """log D vs 1000/T, all systems and mass settings, with stderr bars and Arrhenius fits."""
    import numpy as np

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 4.4), layout="constrained")
    by_group = defaultdict(list)
    for r in runs:
        by_group[_group_key(r)].append(r)
    colors = _colors(len(summary))
    skipped = 0
    plotted = 0
    for color, s in zip(colors, summary):
        pts = by_group.get(_group_key(s), [])
        T = np.array([p["temperature_K"] for p in pts], float)
        D = np.array([p["diffusivity_cm2_s"] if p.get("diffusivity_cm2_s") is not None else np.nan for p in pts], float)
        E = np.array([p.get("diffusivity_stderr_cm2_s") or 0.0 for p in pts], float)
        ok = np.isfinite(D) & (D > 0)
        skipped += int((~ok).sum())
        if ok.any():
            lower = np.minimum(E[ok], D[ok] * 0.999)
            ax.errorbar(1000.0 / T[ok], D[ok], yerr=[lower, E[ok]], fmt="o", ms=4, capsize=2, color=color,
                        label=_label(s))
            plotted += 1
        ea, d0 = s.get("Ea_eV"), s.get("D0_cm2_s")
        if ea is not None and d0 is not None and d0 > 0 and len(T):
            t_fit = np.linspace(T.min(), T.max(), 50)
            t_ext = np.linspace(300.0, T.min(), 50)
            ax.plot(1000.0 / t_fit, d0 * np.exp(-ea / (KB_EV_K * t_fit)), "-", color=color, lw=1.2)
            ax.plot(1000.0 / t_ext, d0 * np.exp(-ea / (KB_EV_K * t_ext)), "--", color=color, lw=0.8)
            se = s.get("Ea_stderr_eV")
            if not ok.any():
                ax.plot([], [], "-", color=color, label=_label(s))
            txt = f"Ea={ea:.2f}" + (f"±{se:.2f}" if se is not None else "") + " eV"
            ax.annotate(txt, (1000.0 / T.max(), d0 * np.exp(-ea / (KB_EV_K * T.max()))), fontsize=6, color=color,
                        xytext=(4, 4), textcoords="offset points")
    if plotted == 0 and not any(s.get("Ea_eV") is not None for s in summary):
        _empty(ax, "no positive diffusivity to plot")
    else:
        ax.set_yscale("log")
        ax.set_xlabel("1000 / T (1/K)")
        ax.set_ylabel("D (cm²/s)")
        ax.axvline(1000.0 / 300.0, color="0.6", lw=0.6, ls=":")
        ax.legend(loc="lower left", frameon=False)
        sec = ax.secondary_xaxis("top", functions=(lambda x: 1000.0 / np.maximum(x, 1e-9), lambda t: 1000.0 / np.maximum(t, 1e-9)))
        sec.set_xlabel("T (K)")
    title = "Arrhenius plot (fit solid, extrapolation to 300 K dashed)"
    if skipped:
        title += f"\n{skipped} run(s) with D <= 0 not shown"
    ax.set_title(title)
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
    """σ(300 K) with 95 % CI, Ea ± stderr and active fraction against the anion mass factor."""
    import numpy as np

    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.4), layout="constrained")
    series = _mass_series(summary)
    if not series:
        for ax in axes:
            _empty(ax, "no results")
        _footnote(fig, summary)
        return fig
    colors = _colors(len(series))
    for color, ((system, name), rows) in zip(colors, series.items()):
        lab = f"{rows[0].get('label') or system}: {name}"
        f = np.array([r["mass_factor"] for r in rows], float)
        sig = np.array([r["sigma_300K_mS_cm"] if r.get("sigma_300K_mS_cm") is not None else np.nan for r in rows])
        lo = np.array([r["sigma_300K_ci95_low_mS_cm"] if r.get("sigma_300K_ci95_low_mS_cm") is not None else np.nan for r in rows])
        hi = np.array([r["sigma_300K_ci95_high_mS_cm"] if r.get("sigma_300K_ci95_high_mS_cm") is not None else np.nan for r in rows])
        ok = np.isfinite(sig) & (sig > 0)
        if ok.any():
            yerr = [np.nan_to_num(np.clip(sig - lo, 0, None))[ok], np.nan_to_num(np.clip(hi - sig, 0, None))[ok]]
            axes[0].errorbar(f[ok], sig[ok], yerr=yerr, fmt="o-", ms=4, capsize=2, color=color, label=lab)
        ea = np.array([r["Ea_eV"] if r.get("Ea_eV") is not None else np.nan for r in rows])
        se = np.array([r.get("Ea_stderr_eV") or 0.0 for r in rows])
        axes[1].errorbar(f, ea, yerr=se, fmt="o-", ms=4, capsize=2, color=color, label=lab)
        temps = sorted({k for r in rows for k in r if k.startswith("active_fraction_") and k.endswith("K")},
                       key=lambda k: float(k[len("active_fraction_"):-1]))
        for j, key in enumerate(temps):
            y = np.array([r.get(key) if r.get(key) is not None else np.nan for r in rows], float)
            alpha = 0.35 + 0.65 * (j + 1) / len(temps)
            axes[2].plot(f, y, "o-", ms=3, color=color, alpha=alpha,
                         label=f"{lab}, {key[len('active_fraction_'):-1]} K")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("σ(300 K) (mS/cm), 95 % CI")
    axes[1].set_ylabel("Ea (eV)")
    axes[2].set_ylabel("active fraction")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("anion mass factor")
        ax.legend(frameon=False, fontsize=6)
    axes[0].set_title("extrapolated conductivity")
    axes[1].set_title("activation energy")
    axes[2].set_title("active mobile ions (per T)")
    _footnote(fig, summary)
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
    """Mobile-ion MSD vs lag time, one panel per (system, mass setting), one curve per T."""
    import numpy as np

    plt = _plt()
    fig, axes = _grid(plt, max(len(summary), 1))
    if not summary:
        _empty(axes[0], "no runs")
    for ax, s in zip(axes, summary):
        rows = [r for r in runs if _group_key(r) == _group_key(s)]
        first_seed = min((r["seed"] for r in rows), default=None)
        rows = sorted([r for r in rows if r["seed"] == first_seed], key=lambda r: r["temperature_K"])
        colors = plt.get_cmap("plasma")(np.linspace(0.1, 0.85, max(len(rows), 1)))
        for color, r in zip(colors, rows):
            path = Path(str(r.get("msd_npz") or ""))
            if not path.is_file():
                continue
            z = read_npz(path, fix="delete it and rerun the workflow (snakemake ...)", keys=("lag_ps", "msd_A2"))
            t, msd = np.asarray(z["lag_ps"]), np.asarray(z["msd_A2"])
            ax.plot(t, msd, color=color, lw=1.2, label=f"{r['temperature_K']:g} K")
        thr = rows[0].get("active_threshold_A2") if rows else None
        top = max((line.get_ydata().max() for line in ax.get_lines()), default=0.0)
        if thr and top > thr / 3:
            ax.axhline(thr, color="0.5", ls=":", lw=0.8, label=f"active threshold {thr:g} Å²")
        ax.set_title(_label(s))
        ax.set_xlabel("lag time (ps)")
        ax.set_ylabel("MSD (Å²)")
        ax.legend(frameon=False)
    for ax in axes[len(summary):]:
        ax.set_visible(False)
    _footnote(fig, summary)
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
