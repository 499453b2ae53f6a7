"""Result tables of a sweep from the per-run and per-group JSON files.

``diffusion.csv``: one row per MD run (system, mass setting, T, seed) — diffusivity (cm²/s),
conductivity (mS/cm), active ions, rotation speeds (rad/ps) and relaxation times (ps).
``summary.csv``: one row per (system, mass setting) — Arrhenius Ea (eV) ± stderr, D0, the
300 K extrapolation of D (cm²/s) and σ (mS/cm) with its 95 % interval, active fraction and
rotation speed per temperature, and a ``warnings`` column.
Paths follow :mod:`superion.layout`.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from superion import layout
from superion.workflow import config as sc
from superion.atomic import write_text
from superion.errors import SuperionError

# Below this production length a run's D is noisy (science.md: hops need several ps at 800 K).
SHORT_PRODUCTION_PS = 100.0

DIFFUSION_COLUMNS = [
    "system", "label", "mass_setting", "mass_series", "mass_factor", "mass_scaling",
    "temperature_K", "seed", "production_ps", "n_ions", "volume_A3",
    "diffusivity_cm2_s", "diffusivity_stderr_cm2_s", "conductivity_mS_cm", "conductivity_stderr_mS_cm",
    "haven_ratio", "n_active", "active_fraction", "active_normalization", "active_threshold_A2",
    "msd_at_fit_end_A2", "fit_start_ps", "fit_end_ps",
]
DIFFUSION_TAIL = ["warnings", "run_dir", "diffusion_json", "msd_npz", "rotation_json", "density_cube"]

SUMMARY_COLUMNS = [
    "system", "label", "mass_setting", "mass_series", "mass_factor", "mass_scaling", "mobile_species",
    "n_runs", "temperatures_K", "production_ps",
    "Ea_eV", "Ea_stderr_eV", "D0_cm2_s", "D_300K_cm2_s",
    "sigma_300K_mS_cm", "sigma_300K_ci95_low_mS_cm", "sigma_300K_ci95_high_mS_cm",
]


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
        for key in ("n_ions", "volume_A3", "diffusivity_cm2_s", "diffusivity_stderr_cm2_s", "conductivity_mS_cm",
                    "conductivity_stderr_mS_cm", "haven_ratio", "n_active", "active_threshold_A2",
                    "msd_at_fit_end_A2", "fit_start_ps", "fit_end_ps"):
            row[key] = diff.get(key)
        tdiff = _num(diff.get("temperature_K"))
        warnings = list(diff.get("warnings") or [])
        if tdiff is not None and abs(tdiff - run.temperature_K) > 1e-6:
            warnings.append(f"analysis temperature {tdiff:g} K differs from the run's {run.temperature_K:g} K")
        row["active_normalization"] = an["active_normalization"]
        row["active_fraction"] = active_fraction(diff, an["active_normalization"])
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
    if temps and min(temps) > 400:
        out.append(f"300 K values extrapolated from >= {min(temps):g} K")
    nonpos = [r["temperature_K"] for r in rows if (_num(r.get("diffusivity_cm2_s")) or 0.0) <= 0]
    if nonpos:
        out.append("no measurable diffusion at " + ", ".join(f"{t:g} K" for t in sorted(set(nonpos))))
    ea, se = _num(arr.get("Ea_eV")), _num(arr.get("Ea_stderr_eV"))
    if ea is not None and se is not None and se > 0.5 * abs(ea):
        out.append(f"Ea stderr {se:.2g} eV is more than half of Ea")
    if ea is not None and ea <= 0:
        out.append("non-positive Ea: the Arrhenius fit is not physical (noise)")
    for w in arr.get("warnings") or []:
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
        ci = arr.get("conductivity_300K_ci95_mS_cm") or [None, None]
        temps = sorted({r["temperature_K"] for r in rows})
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
            "Ea_eV": arr.get("Ea_eV"),
            "Ea_stderr_eV": arr.get("Ea_stderr_eV"),
            "D0_cm2_s": arr.get("D0_cm2_s"),
            "D_300K_cm2_s": arr.get("diffusivity_300K_cm2_s"),
            "sigma_300K_mS_cm": arr.get("conductivity_300K_mS_cm"),
            "sigma_300K_ci95_low_mS_cm": ci[0] if len(ci) > 0 else None,
            "sigma_300K_ci95_high_mS_cm": ci[1] if len(ci) > 1 else None,
        }
        for t in temps:
            vals = [_num(r["active_fraction"]) for r in rows if r["temperature_K"] == t]
            vals = [v for v in vals if v is not None]
            row[f"active_fraction_{sc.temp_tag(t)}K"] = sum(vals) / len(vals) if vals else None
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
