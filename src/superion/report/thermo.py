"""Thermo figure: T, P, V and cell lengths a, b, c against time for every run group.

One row of panels per (system, mass setting), one panel per quantity, the group's runs overlaid
and coloured by temperature (seeds by line style); the production part is shaded and each run's
equilibration verdict (``equilibration.json`` of :mod:`superion.analysis.equilibration`) is in
its legend entry. Drawn from the runs' ``thermo.csv`` (a small log, not the trajectory).
Units: time in ps, T in K, P in bar, V in Å³, lengths in Å.
"""

from __future__ import annotations

from pathlib import Path

PANELS = (("T_K", "T (K)"), ("P_bar", "P (bar)"), ("volume_A3", "V (Å³)"),
          ("a_A", "a (Å)"), ("b_A", "b (Å)"), ("c_A", "c (Å)"))
STYLES = ("-", "--", ":", "-.")
MAX_RAW_POINTS = 4000  # thin raw line (strided above this); the bold line is block-averaged
SMOOTH_POINTS = 150


def _smooth(t, x, n: int):
    import numpy as np

    n = max(1, min(n, len(x)))
    return (np.array([b.mean() for b in np.array_split(t, n)]), np.array([b.mean() for b in np.array_split(x, n)]))


def thermo_figure(cfg: dict, summary: list[dict], runs: list[dict]):
    """Thermo panels per run group (rows) x quantity (columns); production shaded, verdict in the legend."""
    import numpy as np

    from superion import layout
    from superion.analysis.equilibration import read_equilibration, short_verdict
    from superion.md.storage import read_thermo
    from superion.report.figures import _empty, _footnote, _group_key, _label, _plt

    plt = _plt()
    groups = summary or [{"system": "", "mass_setting": ""}]
    fig = plt.figure(figsize=(2.35 * len(PANELS), 2.4 * len(groups) + 0.4), layout="constrained")
    subfigs = fig.subfigures(len(groups), 1, squeeze=False)[:, 0]
    axes = [sf.subplots(1, len(PANELS)) for sf in subfigs]
    p_target = (cfg.get("md") or {}).get("pressure_bar")
    for sf, ax_row, s in zip(subfigs, axes, groups):
        rows = sorted((r for r in runs if _group_key(r) == _group_key(s)), key=lambda r: (r["temperature_K"], r["seed"]))
        temps = sorted({r["temperature_K"] for r in rows})
        cmap = plt.get_cmap("plasma")
        color = {T: cmap(v) for T, v in zip(temps, np.linspace(0.1, 0.8, max(len(temps), 1)))}
        seeds = sorted({r["seed"] for r in rows})
        drawn, dashed, spans = 0, False, []
        for r in rows:
            path = layout.run_file(str(r.get("run_dir") or ""), "thermo")
            if not path.is_file():
                continue
            th = read_thermo(path)
            t = th["time_fs"] / 1000.0
            prod = th["phase"] == "production"
            v = read_equilibration(Path(str(r.get("diffusion_json") or "")).parent) if r.get("diffusion_json") else None
            tag = short_verdict(v).replace("drifting", "DRIFTING") if v else "not checked"
            style = STYLES[seeds.index(r["seed"]) % len(STYLES)]
            stride = max(1, len(t) // MAX_RAW_POINTS)
            for ax, (key, _) in zip(ax_row, PANELS):
                ax.plot(t[::stride], th[key][::stride], color=color[r["temperature_K"]], lw=0.4, alpha=0.3)
                ts, xs = _smooth(t, th[key], SMOOTH_POINTS)
                ax.plot(ts, xs, color=color[r["temperature_K"]], lw=1.2, ls=style,
                        label=f"{r['temperature_K']:g} K" + (f" s{r['seed']}" if len(seeds) > 1 else "") + f": {tag}")
            if prod.any():
                spans.append((t[prod][0], t[prod][-1]))
            after = (v or {}).get("equilibrated_after_ps")
            if after is not None and prod.any() and after > t[prod][0]:
                # where the rest of the production would pass the check: the equilibration it needed
                for ax in ax_row[2:]:
                    ax.axvline(after, color=color[r["temperature_K"]], ls="--", lw=0.8)
                dashed = True
            drawn += 1
        if spans:  # runs of a group may differ in length (one still running): shade their union
            for ax in ax_row:
                ax.axvspan(min(a for a, _ in spans), max(b for _, b in spans), color="0.85", alpha=0.5, lw=0, zorder=0)
        if not drawn:
            _empty(ax_row[0], "no thermo.csv found")
            for ax in ax_row[1:]:
                ax.set_visible(False)
            continue
        for ax, (key, ylabel) in zip(ax_row, PANELS):
            ax.set_ylabel(ylabel)
            ax.set_xlabel("time (ps)")
            if key == "T_K":
                for T in temps:
                    ax.axhline(T, color=color[T], ls=":", lw=0.8)
            if key == "P_bar" and p_target is not None:
                ax.axhline(p_target, color="0.3", ls=":", lw=0.8)
        note = "shaded: production" + ("; dashed: the rest of the production passes the drift check" if dashed else "")
        sf.suptitle(f"{_label(s)}   ({note})", x=0.01, ha="left", fontsize=9)
        sf.legend(*ax_row[0].get_legend_handles_labels(), loc="outside upper right", frameon=False, fontsize=7,
                  ncols=min(4, max(1, drawn)))
    _footnote(fig, summary)
    return fig
