"""Result tables of a sweep from the per-run and per-group JSON files.

``diffusion.csv``: one row per MD run (system, mass setting, T, seed) — regime, diffusivity
(cm²/s) with its 95 % interval or, for a non-diffusive run, an empty ``diffusivity_cm2_s`` and
its upper bound, conductivity (mS/cm), hop rate (1/s), MSD at the reference lag (Å²), active
ions, each with its 95 % interval, rotation speeds (rad/ps) and relaxation times (ps). The
``*_text`` columns are what a reader should quote: "value [low, high]", "< bound" or
"not resolved: reason".
``summary.csv``: one row per (system, mass setting) — whether the Arrhenius fit is resolved
(and why not), Ea (eV) ± stderr, D0, the 300 K extrapolation of D (cm²/s) and σ (mS/cm) with its
95 % interval (numbers only when resolved), Ea from hop rates, active fraction, MSD at the
reference lag and rotation speed per temperature, and a ``warnings`` column.
Paths follow :mod:`superion.layout`.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from superion import layout
from superion.analysis.equilibration import equilibration_verdict, equilibration_warnings
from superion.workflow import config as sc
from superion.atomic import write_text
from superion.errors import SuperionError

# Below this production length a run's D is noisy (science.md: hops need several ps at 800 K).
SHORT_PRODUCTION_PS = 100.0

DIFFUSION_COLUMNS = [
    "system", "label", "mass_setting", "mass_series", "mass_factor", "mass_scaling",
    "temperature_K", "seed", "production_ps", "n_ions", "volume_A3",
    "regime", "D_text_cm2_s", "hop_rate_text_per_s", "msd_ref_text_A2", "active_fraction_text",
    "diffusivity_cm2_s", "diffusivity_stderr_cm2_s", "diffusivity_ci95_low_cm2_s", "diffusivity_ci95_high_cm2_s",
    "diffusivity_upper_bound_cm2_s", "conductivity_mS_cm", "conductivity_stderr_mS_cm", "conductivity_upper_bound_mS_cm",
    "haven_ratio", "n_hops", "hop_rate_per_s", "hop_rate_ci95_low_per_s", "hop_rate_ci95_high_per_s", "correlation_factor",
    "msd_ref_lag_ps", "msd_ref_A2", "msd_ref_ci95_low_A2", "msd_ref_ci95_high_A2",
    "n_active", "active_fraction", "active_fraction_ci95_low", "active_fraction_ci95_high", "active_normalization",
    "active_threshold_A2", "hop_length_A", "msd_at_fit_end_A2", "fit_start_ps", "fit_end_ps", "fit_window_found",
]
DIFFUSION_TAIL = ["warnings", "run_dir", "diffusion_json", "msd_npz", "rotation_json", "density_cube"]

SUMMARY_COLUMNS = [
    "system", "label", "mass_setting", "mass_series", "mass_factor", "mass_scaling", "mobile_species",
    "n_runs", "temperatures_K", "production_ps",
    "resolved", "Ea_text_eV", "sigma_300K_text_mS_cm", "Ea_hops_text_eV", "regimes",
    "Ea_eV", "Ea_stderr_eV", "D0_cm2_s", "D_300K_cm2_s",
    "sigma_300K_mS_cm", "sigma_300K_ci95_low_mS_cm", "sigma_300K_ci95_high_mS_cm", "Ea_hops_eV",
    "not_resolved_reason",
]


def interval_text(value, ci, fmt: str = ".3g") -> str:
    """"value [low, high]" (or the value alone without an interval); "" when there is no value."""
    v = _num(value)
    if v is None:
        return ""
    lo, hi = (_num(c) for c in (ci or (None, None)))
    return f"{v:{fmt}}" + (f" [{lo:{fmt}}, {hi:{fmt}}]" if lo is not None and hi is not None else "")


def diffusivity_text(diff: dict) -> str:
    """D [95 %] for a diffusive run, "< upper bound" otherwise, "not resolved: ..." without a bound."""
    if _num(diff.get("diffusivity_cm2_s")) is not None:
        return interval_text(diff["diffusivity_cm2_s"], diff.get("diffusivity_ci95_cm2_s"))
    ub = _num(diff.get("diffusivity_upper_bound_cm2_s"))
    if ub is not None:
        return f"< {ub:.3g}"
    return f"not resolved: {diff.get('regime') or 'no diffusivity'}"


def _split(ci) -> tuple:
    return (ci[0], ci[1]) if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)


def _read_json(path: Path) -> dict:
    from superion.files import read_json

    if not Path(path).exists():
        raise SuperionError(f"missing result file {path}; run the workflow first (snakemake ...)")
    return read_json(path, fix="delete it and rerun the workflow (snakemake ...)")


def rotation_by_type(data: dict) -> dict[str, dict]:
    """Per-cluster-type entries of a rotation JSON (tolerates a wrapping key)."""
    for key in ("clusters", "types", "by_type", "cluster_types"):
        if isinstance(data.get(key), dict):
            data = data[key]
            break
    return {k: v for k, v in data.items() if isinstance(v, dict) and ("rotation_speed_rad_ps" in v or "n_clusters" in v)}


def _num(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def active_fraction(diff: dict, normalization: Any) -> float | None:
    """n_active / normalization (``'n_ions'``: the mobile ions simulated)."""
    n_active = diff.get("n_active")
    if n_active is None:
        return _num(diff.get("active_fraction"))
    norm = diff.get("n_ions") if normalization == "n_ions" else normalization
    norm = _num(norm)
    return None if not norm else float(n_active) / norm


def collect_runs(cfg: dict, results: Path | None = None) -> list[dict]:
    """One dict per MD run with the DIFFUSION_COLUMNS (+ rotation_<type>_* keys)."""
    res = Path(results) if results is not None else layout.results_dir(cfg)
    rows = []
    for run in sc.runs(cfg):
        adir = res / layout.LAYOUT["analysis"].format(**run.wildcards)
        rdir = res / layout.LAYOUT["run"].format(**run.wildcards)
        diff = _read_json(layout.analysis_file(adir, "diffusion"))
        rot_path = layout.analysis_file(adir, "rotation")
        rot = rotation_by_type(_read_json(rot_path)) if rot_path.is_file() else {}
        an = sc.system_section(cfg, run.system, "analysis")
        md = sc.system_section(cfg, run.system, "md")
        series, factor = sc.mass_series(cfg, run.mass)
        row: dict[str, Any] = {
            "system": run.system,
            "label": cfg["systems"][run.system].get("label", run.system),
            "mass_setting": run.mass,
            "mass_series": series,
            "mass_factor": factor,
            "mass_scaling": " ".join(sc.mass_scale_args(cfg, run.mass)) or "none",
            "temperature_K": run.temperature_K,
            "seed": run.seed,
            "production_ps": md["production_ps"],
        }
        for key in ("n_ions", "volume_A3", "regime", "diffusivity_cm2_s", "diffusivity_stderr_cm2_s",
                    "diffusivity_upper_bound_cm2_s", "conductivity_mS_cm", "conductivity_stderr_mS_cm",
                    "conductivity_upper_bound_mS_cm", "haven_ratio", "n_hops", "hop_rate_per_s", "correlation_factor",
                    "msd_ref_lag_ps", "msd_ref_A2", "n_active", "active_threshold_A2", "hop_length_A",
                    "msd_at_fit_end_A2", "fit_start_ps", "fit_end_ps", "fit_window_found"):
            row[key] = diff.get(key)
        if row["regime"] is None:  # a result from before the regime classification: every D was a measurement
            row["regime"] = "unclassified"
        row["diffusivity_ci95_low_cm2_s"], row["diffusivity_ci95_high_cm2_s"] = _split(diff.get("diffusivity_ci95_cm2_s"))
        row["hop_rate_ci95_low_per_s"], row["hop_rate_ci95_high_per_s"] = _split(diff.get("hop_rate_ci95_per_s"))
        row["msd_ref_ci95_low_A2"], row["msd_ref_ci95_high_A2"] = _split(diff.get("msd_ref_ci95_A2"))
        row["D_text_cm2_s"] = diffusivity_text(diff)
        row["hop_rate_text_per_s"] = interval_text(diff.get("hop_rate_per_s"), diff.get("hop_rate_ci95_per_s"))
        row["msd_ref_text_A2"] = interval_text(diff.get("msd_ref_A2"), diff.get("msd_ref_ci95_A2"))
        tdiff = _num(diff.get("temperature_K"))
        warnings = list(diff.get("warnings") or []) + equilibration_warnings(adir)
        row["equilibration"] = equilibration_verdict(adir)
        if tdiff is not None and abs(tdiff - run.temperature_K) > 1e-6:
            warnings.append(f"analysis temperature {tdiff:g} K differs from the run's {run.temperature_K:g} K")
        row["active_normalization"] = an["active_normalization"]
        row["active_fraction"] = active_fraction(diff, an["active_normalization"])
        ci = diff.get("active_fraction_ci95")
        norm = _num(diff.get("active_normalization"))
        table_norm = _num(diff.get("n_ions")) if an["active_normalization"] == "n_ions" else _num(an["active_normalization"])
        if ci and norm and table_norm and row["active_fraction"] is not None:  # the JSON's interval is for its own normalization
            ci = [ci[0] * norm / table_norm, ci[1] * norm / table_norm]
        else:
            ci = None
        row["active_fraction_ci95_low"], row["active_fraction_ci95_high"] = _split(ci)
        row["active_fraction_text"] = interval_text(row["active_fraction"], ci)
        for ctype, entry in sorted(rot.items()):
            for key in ("rotation_speed_rad_ps", "c1_tau_ps", "c2_tau_ps", "n_clusters"):
                if key in entry:
                    row[f"{ctype}_{key}"] = entry[key]
        row["warnings"] = "; ".join(dict.fromkeys(str(w) for w in warnings))
        row["run_dir"] = str(rdir)
        row["diffusion_json"] = str(layout.analysis_file(adir, "diffusion"))
        row["msd_npz"] = str(layout.analysis_file(adir, "msd"))
        row["rotation_json"] = str(rot_path)
        row["density_cube"] = str(layout.analysis_file(adir, "density"))
        rows.append(row)
    return rows


def _group_warnings(cfg: dict, system: str, rows: list[dict], arr: dict) -> list[str]:
    md = sc.system_section(cfg, system, "md")
    temps = sorted({r["temperature_K"] for r in rows})
    out = []
    if md["production_ps"] < SHORT_PRODUCTION_PS:
        out.append(f"short runs ({md['production_ps']:g} ps production < {SHORT_PRODUCTION_PS:g} ps): D, Ea and sigma are noisy")
    if len(temps) < 3:
        out.append(f"only {len(temps)} temperature(s): Ea has no meaningful error")
    if temps and min(temps) > 400 and arr.get("resolved", True):
        out.append(f"300 K values extrapolated from >= {min(temps):g} K")
    bound = [r["temperature_K"] for r in rows if (_num(r.get("diffusivity_cm2_s")) or 0.0) <= 0]
    if bound:
        out.append("D not resolved (non-diffusive: upper bound only) at " + ", ".join(f"{t:g} K" for t in sorted(set(bound))))
    if arr.get("resolved") is False and arr.get("not_resolved_reason"):
        out.append(f"Arrhenius not resolved: {arr['not_resolved_reason']}")
    ea, se = _num(arr.get("Ea_eV")), _num(arr.get("Ea_stderr_eV"))
    if ea is not None and se is not None and se > 0.5 * abs(ea):
        out.append(f"Ea stderr {se:.2g} eV is more than half of Ea")
    if ea is not None and ea <= 0:
        out.append("non-positive Ea: the Arrhenius fit is not physical (noise)")
    for w in arr.get("warnings") or []:
        # per-run exclusions and "no fit" are said once above ("D not resolved ... at", "Arrhenius not resolved")
        if "excluded from the fit (upper bound only)" in str(w) or str(w).startswith("no Arrhenius fit"):
            continue
        out.append(str(w))
    return list(dict.fromkeys(out))


def summarize(cfg: dict, run_rows: list[dict], results: Path | None = None) -> list[dict]:
    """One dict per (system, mass setting): Arrhenius results + per-T active fraction/rotation."""
    res = Path(results) if results is not None else layout.results_dir(cfg)
    out = []
    for system, mass in sc.groups(cfg):
        rows = [r for r in run_rows if r["system"] == system and r["mass_setting"] == mass]
        arr = _read_json(res / layout.LAYOUT["arrhenius"].format(system=system, mass=mass))
        series, factor = sc.mass_series(cfg, mass)
        # numbers only where the data resolve them; older arrhenius.json without "resolved": as fitted
        resolved = bool(arr.get("resolved", arr.get("Ea_eV") is not None))
        reason = arr.get("not_resolved_reason") or ("no fit" if not resolved else None)
        keep = (lambda v: v) if resolved else (lambda v: None)  # noqa: E731
        ci = (arr.get("sigma_300K_ci95_mS_cm") or arr.get("conductivity_300K_ci95_mS_cm") or [None, None]) if resolved else [None, None]
        temps = sorted({r["temperature_K"] for r in rows})
        ea_ci = arr.get("Ea_ci95_eV")
        nr = f"not resolved: {reason}"
        row: dict[str, Any] = {
            "system": system,
            "label": cfg["systems"][system].get("label", system),
            "mass_setting": mass,
            "mass_series": series,
            "mass_factor": factor,
            "mass_scaling": " ".join(sc.mass_scale_args(cfg, mass)) or "none",
            "mobile_species": cfg["systems"][system]["mobile_species"],
            "n_runs": len(rows),
            "temperatures_K": ";".join(f"{t:g}" for t in temps),
            "production_ps": sc.system_section(cfg, system, "md")["production_ps"],
            "resolved": resolved,
            "Ea_text_eV": interval_text(arr.get("Ea_eV"), ea_ci) if resolved else nr,
            "sigma_300K_text_mS_cm": interval_text(arr.get("conductivity_300K_mS_cm"), ci) if resolved else nr,
            "Ea_hops_text_eV": (interval_text(arr.get("Ea_hops_eV"), arr.get("Ea_hops_ci95_eV")) if arr.get("Ea_hops_eV") is not None
                                else f"not resolved: {arr.get('hops_not_resolved_reason') or 'no hop-rate fit'}"),
            "regimes": ";".join(dict.fromkeys(f"{r['temperature_K']:g}K:{r.get('regime')}"
                                              for r in sorted(rows, key=lambda r: (r["temperature_K"], r["seed"])))),
            "Ea_eV": keep(arr.get("Ea_eV")),
            "Ea_stderr_eV": keep(arr.get("Ea_stderr_eV")),
            "D0_cm2_s": keep(arr.get("D0_cm2_s")),
            "D_300K_cm2_s": keep(arr.get("diffusivity_300K_cm2_s")),
            "sigma_300K_mS_cm": keep(arr.get("conductivity_300K_mS_cm")),
            "sigma_300K_ci95_low_mS_cm": ci[0] if len(ci) > 0 else None,
            "sigma_300K_ci95_high_mS_cm": ci[1] if len(ci) > 1 else None,
            "Ea_hops_eV": arr.get("Ea_hops_eV"),
            "not_resolved_reason": None if resolved else reason,
        }
        for t in temps:
            vals = [_num(r["active_fraction"]) for r in rows if r["temperature_K"] == t]
            vals = [v for v in vals if v is not None]
            row[f"active_fraction_{sc.temp_tag(t)}K"] = sum(vals) / len(vals) if vals else None
            msd = [_num(r.get("msd_ref_A2")) for r in rows if r["temperature_K"] == t]
            msd = [v for v in msd if v is not None]
            row[f"msd_ref_{sc.temp_tag(t)}K_A2"] = sum(msd) / len(msd) if msd else None
        ctypes = sorted({k[: -len("_rotation_speed_rad_ps")] for r in rows for k in r if k.endswith("_rotation_speed_rad_ps")})
        for ctype in ctypes:
            for t in temps:
                vals = [_num(r.get(f"{ctype}_rotation_speed_rad_ps")) for r in rows if r["temperature_K"] == t]
                vals = [v for v in vals if v is not None]
                row[f"rotation_{ctype}_{sc.temp_tag(t)}K_rad_ps"] = sum(vals) / len(vals) if vals else None
        row["warnings"] = "; ".join(_group_warnings(cfg, system, rows, arr))
        out.append(row)
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.6g}"
    return str(v)


def to_csv(rows: list[dict], head: list[str], tail: list[str] = ()) -> str:
    """CSV text: ``head`` columns, then any extra keys (sorted), then ``tail``."""
    extra = sorted({k for r in rows for k in r} - set(head) - set(tail))
    cols = list(head) + extra + [c for c in tail if any(c in r for r in rows) or not rows]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_fmt(r.get(c)) for c in cols])
    return buf.getvalue()


def write_tables(cfg: dict, results: Path | None = None, summary_path: Path | None = None,
                 diffusion_path: Path | None = None) -> tuple[Path, Path]:
    """Write summary.csv and diffusion.csv (atomically); return their paths."""
    res = Path(results) if results is not None else layout.results_dir(cfg)
    run_rows = collect_runs(cfg, res)
    summary = summarize(cfg, run_rows, res)
    summary_path = Path(summary_path or res / layout.LAYOUT["summary"])
    diffusion_path = Path(diffusion_path or res / layout.LAYOUT["diffusion"])
    write_text(diffusion_path, to_csv(run_rows, DIFFUSION_COLUMNS, DIFFUSION_TAIL))
    write_text(summary_path, to_csv(summary, SUMMARY_COLUMNS, ["warnings"]))
    return summary_path, diffusion_path


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a table written here, numbers converted to float where possible."""
    path = Path(path)
    if not path.is_file():
        raise SuperionError(f"table not found: {path}; run `superion tables` (or the workflow) first")
    from superion.files import read_csv as read_rows

    rows = read_rows(path, fix="delete it and rerun `superion tables` (or the workflow)")
    out = []
    for r in rows:
        conv = {}
        for k, v in r.items():
            if v == "":
                conv[k] = None
                continue
            try:
                conv[k] = float(v)
            except ValueError:
                conv[k] = v
        out.append(conv)
    return out
