"""First page of a sweep's report: what was resolved and what not, in words, with the table and figures.

:func:`write_page` writes ``<results>/report/index.md`` (figures by relative path) and
``index.html`` (self-contained: figures as base64 PNG, ``summary.csv`` as an HTML table) from
``summary.csv``, ``diffusion.csv`` and the per-run / per-group JSON they point to. It reads the
statistics fields when the analysis wrote them (``regime``, ``diffusivity_upper_bound_cm2_s``,
``msd_ref_A2``/``msd_ref_ci95_A2``, ``hop_rate_per_s``/``hop_rate_ci95_per_s``, Arrhenius
``resolved``/``not_resolved_reason``) and says "not assessed" when they are absent. Anything
unresolved is written as "< bound" or "not resolved: reason", never as a value.
Units: D in cm²/s, MSD in Å², hop rate in 1/s, σ in mS/cm, Ea in eV.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from superion import layout
from superion.files import read_json_or

# Figures shown inline, most informative first (the rest of FIGURE_KINDS follow).
KEY_FIGURES = ("msd", "arrhenius", "thermo", "mass_scaling")


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _g(x: float | None, digits: int = 2) -> str:
    return "?" if x is None else f"{x:.{digits}g}"


def _ci(ci: Any, digits: int = 2) -> str:
    """`` [lo, hi]`` of a two-element interval, else empty."""
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_num(c) is not None for c in ci):
        return f" [{_g(_num(ci[0]), digits)}, {_g(_num(ci[1]), digits)}]"
    return ""


def run_sentence(row: dict, diff: dict, equil: dict) -> str:
    """One run in words: MSD at the reference lag, regime → D or its bound, hop rate, equilibration."""
    from superion.analysis.equilibration import short_verdict

    ion = diff.get("species") or "ion"
    parts = []
    msd, lag = _num(diff.get("msd_ref_A2")), _num(diff.get("msd_ref_lag_ps"))
    if msd is not None:
        parts.append(f"{ion} MSD({_g(lag)} ps) = {_g(msd)}{_ci(diff.get('msd_ref_ci95_A2'))} Å²")
    regime = diff.get("regime")
    D = _num(diff.get("diffusivity_cm2_s"))
    if regime == "diffusive" and D is not None:
        ci = _ci(diff.get("diffusivity_ci95_cm2_s"))
        se = _num(diff.get("diffusivity_stderr_cm2_s"))
        parts.append(f"diffusive → D = {_g(D)}{ci or (f' ± {_g(se, 1)}' if se else '')} cm²/s")
    elif regime:
        why = "; ".join(diff.get("regime_reasons") or [])
        ub = _num(diff.get("diffusivity_upper_bound_cm2_s"))
        parts.append(f"{regime}" + (f" ({why})" if why else "")
                     + (f" → D < {_g(ub)} cm²/s" if ub is not None else " → D not resolved: no bound"))
    elif D is not None and D > 0:
        se = _num(diff.get("diffusivity_stderr_cm2_s"))
        parts.append(f"D = {_g(D)}" + (f" ± {_g(se, 1)}" if se else "") + " cm²/s (regime not assessed by this analysis)")
    else:
        parts.append("D not resolved: no positive MSD slope")
    rate = _num(diff.get("hop_rate_per_s"))
    if rate is not None:
        n = diff.get("n_hops")
        parts.append(f"hop rate {_g(rate)}{_ci(diff.get('hop_rate_ci95_per_s'))} /s" + (f" ({n} hops)" if n is not None else ""))
    elif "hop_rate_per_s" in diff:
        parts.append("hop rate not resolved" + (f": {diff['hop_note']}" if diff.get("hop_note") else ""))
    if equil:
        verdict = short_verdict(equil)
        parts.append("cell " + verdict + (": NOT equilibrium data" if equil.get("verdict") == "drifting" else ""))
    else:
        parts.append("equilibration not checked")
    dur = _num(diff.get("duration_ps")) or _num(row.get("production_ps"))
    seed = _num(row.get("seed"))
    head = f"{_g(_num(row.get('temperature_K')), 4)} K, seed {int(seed) if seed is not None else '?'}" + (f", {_g(dur)} ps" if dur else "")
    return f"{head}: " + "; ".join(parts)


def group_sentence(summary_row: dict, arr: dict) -> str:
    """Arrhenius of one (system, mass setting) in words: resolved values or 'not resolved: reason'."""
    temps = [t for t in str(summary_row.get("temperatures_K") or "").split(";") if t]
    if "resolved" in arr:
        resolved, reason = bool(arr.get("resolved")), arr.get("not_resolved_reason")
    else:  # an analysis without the statistics fields: judge the obvious cases here
        ea, se = _num(arr.get("Ea_eV")), _num(arr.get("Ea_stderr_eV"))
        reason = (f"{len(temps)} temperature(s)" if len(temps) < 3 else "no fit" if ea is None
                  else f"Ea stderr {_g(se)} eV > half of Ea" if se is None or se > 0.5 * abs(ea) else None)
        resolved = reason is None
    hops = ""
    if "hops_resolved" in arr:  # Ea from hop rates (statistics fields)
        hops = (f"; Ea from hop rates = {_g(_num(arr.get('Ea_hops_eV')))}{_ci(arr.get('Ea_hops_ci95_eV'))} eV"
                if arr.get("hops_resolved") else f"; hop-rate Arrhenius not resolved: {arr.get('hops_not_resolved_reason')}")
    if not resolved:
        return f"Arrhenius: not resolved: {reason or 'no reason given'}" + hops
    ea = _num(arr.get("Ea_eV"))
    ci = _ci(arr.get("Ea_ci95_eV"), 2)
    se = _num(arr.get("Ea_stderr_eV"))
    sig = _num(arr.get("conductivity_300K_mS_cm"))
    out = f"Arrhenius: Ea = {_g(ea)}{ci or (f' ± {_g(se, 1)}' if se else '')} eV"
    if sig is not None:
        out += f"; σ(300 K) = {_g(sig)}{_ci(arr.get('conductivity_300K_ci95_mS_cm'))} mS/cm"
    if "resolved" not in arr:
        out += " (resolution not assessed by this analysis)"
    return out + hops


def contrasts(runs: list[dict]) -> list[str]:
    """Sentences comparing runs at a common temperature and reference lag by the mobile-ion MSD at
    that lag: "Resolved" only when the 95 % intervals do not overlap, else "Not resolved"."""
    by_key: dict = {}
    for r in runs:
        m, lo, hi, lag, T = (_num(r.get(k)) for k in ("msd_ref_A2", "msd_ref_ci95_low_A2", "msd_ref_ci95_high_A2",
                                                       "msd_ref_lag_ps", "temperature_K"))
        if None not in (m, lo, hi, lag, T):
            name = f"{r.get('label') or r['system']} ({r.get('mass_setting')})"
            by_key.setdefault((T, lag), []).append((m, lo, hi, name))
    out = []
    for (T, lag), rows in sorted(by_key.items()):
        rows.sort(key=lambda x: -x[0])
        for (a, a_lo, a_hi, na), (b, b_lo, b_hi, nb) in zip(rows, rows[1:]):
            what = f"{na} {_g(a)} [{_g(a_lo)}, {_g(a_hi)}] Å² vs {nb} {_g(b)} [{_g(b_lo)}, {_g(b_hi)}] Å² at {T:g} K"
            if a_lo > b_hi:
                out.append(f"Resolved: MSD({lag:g} ps) of the mobile ions, {what}: the 95 % intervals do not overlap "
                           f"({a / b:.2g}x larger in {na.split(' (')[0]}).")
            else:
                out.append(f"Not resolved: MSD({lag:g} ps) of the mobile ions, {what}: the 95 % intervals overlap.")
    return out


def page_content(cfg: dict, results: Path) -> dict:
    """The page as data: title, per-group statements, summary table, figures (paths that exist)."""
    from superion.analysis.equilibration import read_equilibration
    from superion.report.tables import read_csv

    summary = read_csv(results / layout.LAYOUT["summary"])  # SuperionError if the tables were not made
    runs = read_csv(results / layout.LAYOUT["diffusion"])
    groups = []
    for s in summary:
        key = (str(s["system"]), str(s["mass_setting"]))
        rows = sorted((r for r in runs if (str(r["system"]), str(r["mass_setting"])) == key),
                      key=lambda r: (r["temperature_K"], r["seed"]))
        lines = []
        for r in rows:
            diff = read_json_or(r.get("diffusion_json"), {})
            adir = Path(str(r.get("diffusion_json") or "")).parent
            lines.append(run_sentence(r, diff, read_equilibration(adir) or {}))
        arr = read_json_or(results / layout.LAYOUT["arrhenius"].format(system=key[0], mass=key[1]), {})
        lines.append(group_sentence(s, arr))
        title = str(s.get("label") or s["system"]) + ("" if s.get("mass_scaling") in (None, "none") else f", {s['mass_scaling']}")
        groups.append({"title": title, "lines": lines, "warnings": str(s.get("warnings") or "")})
    kinds = [k for k in (*KEY_FIGURES, *layout.FIGURE_KINDS) if k in layout.FIGURE_KINDS]
    figures = [(k, results / layout.LAYOUT["figure"].format(kind=k + ".png")) for k in dict.fromkeys(kinds)]
    return {"name": cfg.get("name", results.name), "groups": groups, "summary": summary, "contrasts": contrasts(runs),
            "figures": [(k, p) for k, p in figures if p.is_file()], "n_runs": len(runs)}


def _columns(rows: list[dict]) -> list[str]:
    """Columns with at least one value, in file order (warnings are given per group above the table)."""
    cols = list(dict.fromkeys(k for r in rows for k in r if k != "warnings"))
    return [c for c in cols if any(r.get(c) not in (None, "") for r in rows)]


def _cell(v: Any) -> str:
    x = _num(v) if not isinstance(v, (bool, str)) else None
    if x is None:
        return "" if v is None else str(v)
    return str(int(x)) if x.is_integer() and abs(x) < 1e6 else f"{x:.3g}"


def to_markdown(content: dict, out_dir: Path) -> str:
    """index.md: statements, summary table (pipe table), figures by relative path."""
    import os

    lines = [f"# {content['name']}: what this sweep resolved", "",
             f"{content['n_runs']} MD run(s). Unresolved quantities are given as bounds or 'not resolved: reason'.", ""]
    if content.get("contrasts"):
        lines += ["## In short", ""] + [f"- {t}" for t in content["contrasts"]] + [""]
    for g in content["groups"]:
        lines += [f"## {g['title']}", ""] + [f"- {t}" for t in g["lines"]]
        if g["warnings"]:
            lines.append(f"- warnings: {g['warnings']}")
        lines.append("")
    cols = _columns(content["summary"])
    if cols:
        lines += ["## summary.csv", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(_cell(r.get(c)).replace("|", "/") for c in cols) + " |" for r in content["summary"]]
        lines.append("")
    for kind, p in content["figures"]:
        lines += [f"## {kind}", "", f"![{kind}]({os.path.relpath(p, out_dir)})", ""]
    return "\n".join(lines)


def to_html(content: dict) -> str:
    """index.html, self-contained: figures as base64 PNG, the summary table as HTML."""
    e = html.escape
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
           f"<title>{e(content['name'])}: what this sweep resolved</title>",
           "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
           "table{border-collapse:collapse;font-size:80%}td,th{border:1px solid #ccc;padding:2px 4px}"
           "img{max-width:100%}.warn{color:#a00;font-size:90%}</style></head><body>",
           f"<h1>{e(content['name'])}: what this sweep resolved</h1>",
           f"<p>{content['n_runs']} MD run(s). Unresolved quantities are given as bounds or "
           "'not resolved: reason', never as values.</p>"]
    if content.get("contrasts"):
        out.append("<h2>In short</h2><ul>" + "".join(f"<li>{e(t)}</li>" for t in content["contrasts"]) + "</ul>")
    for g in content["groups"]:
        out.append(f"<h2>{e(g['title'])}</h2><ul>" + "".join(f"<li>{e(t)}</li>" for t in g["lines"]) + "</ul>")
        if g["warnings"]:
            out.append(f"<p class='warn'>warnings: {e(g['warnings'])}</p>")
    cols = _columns(content["summary"])
    if cols:
        out.append("<h2>summary.csv</h2><div style='overflow-x:auto'><table><tr>"
                   + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>")
        for r in content["summary"]:
            out.append("<tr>" + "".join(f"<td>{e(_cell(r.get(c)))}</td>" for c in cols) + "</tr>")
        out.append("</table></div>")
    for kind, p in content["figures"]:
        data = base64.b64encode(Path(p).read_bytes()).decode("ascii")
        out.append(f"<h2>{e(kind)}</h2><img alt='{e(kind)}' src='data:image/png;base64,{data}'>")
    out.append("</body></html>")
    return "\n".join(out)


def write_page(cfg: dict, results: Path | None = None, out: Path | None = None) -> tuple[Path, Path]:
    """Write ``OUT.md`` and ``OUT.html`` (default ``<results>/report/index``); return both paths."""
    from superion.atomic import write_text
    from superion.paths import check_writable

    res = Path(results) if results is not None else layout.results_dir(cfg)
    stem = Path(out) if out is not None else res / layout.LAYOUT["page"]
    md, page = stem.with_name(stem.name + ".md"), stem.with_name(stem.name + ".html")
    check_writable(md)
    check_writable(page)
    content = page_content(cfg, res)
    write_text(md, to_markdown(content, md.parent))
    write_text(page, to_html(content))
    return md, page
