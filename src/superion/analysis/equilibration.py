"""Equilibration check of one MD run from its thermo log: does the cell drift during production?

Pure functions over the thermo columns (``time_fs``, ``phase``, ``T_K``, ``P_bar``, ``volume_A3``,
``a_A``, ``b_A``, ``c_A`` of ``thermo.csv``, see :mod:`superion.md.storage`). For the production
part, per quantity (volume and each cell length):

- ``relative_drift``: linear-fit slope x production duration / mean, with ``relative_drift_stderr``
  from the fit of ``n_blocks`` block means (the block means are ~independent, the raw samples are
  not), so a noisy-but-flat run is not flagged;
- ``relative_thirds_change``: (mean of the last third - mean of the first third) / mean;
- ``relative_block_range``: (max - min of the block means) / mean, which catches a cell that
  changes shape and comes back (an MTK *anisotropic* barostat at 800 K: b 21 -> 29 -> 23 Å with
  no net drift, which a linear fit misses).

Verdict: ``drifting`` (a significant drift of V or a length beyond its threshold, or a length
whose block means wander beyond ``length_wander_max``), ``too short to judge`` (production shorter
than ``min_production_ps``: a barostat with a ~1 ps period cannot be told from a drift, unless the
drift is beyond ``short_run_factor`` x its threshold), else ``equilibrated``. Mean T off the
target is a warning. ``equilibrated_after_ps`` is the earliest block start (ps from the start of
the run) from which the rest of the production passes (null: never), i.e. the equilibration the
run needed.

JSON (``superion analyze equilibration``): ``verdict``, ``reasons``, ``flags`` ({quantity, kind
drift|wander, value}), ``warnings`` (for the tables), ``notes``, ``thresholds``, ``production``
{start_ps, end_ps, duration_ps, n_rows}, ``quantities`` {volume_A3, a_A, b_A, c_A: the statistics
above}, ``temperature`` {mean_K, sd_K, target_K, relative_offset}, ``pressure`` {mean_bar,
sd_bar}, ``equilibrated_after_ps``, ``thermo``, ``ensemble``, ``pdamp_fs``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from superion.errors import SuperionError
from superion.files import read_json_or

FORMAT = 1
VERDICTS = ("equilibrated", "drifting", "too short to judge")

# Why these numbers: a 3 % volume change moves D of a superionic conductor by more than its
# statistical error in a resolved run (activation volume of a few Å^3 per ion); 5 % in a length
# is beyond the ~1-2 % length fluctuation of a 128-atom cell at 800 K (measured, iso NPT) but far
# below the 20 % shape wander of a failing anisotropic barostat.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "volume_drift_max": 0.03,        # |relative drift of V| over the production
    "length_drift_max": 0.05,        # |relative drift of a, b or c|
    "length_wander_max": 0.05,       # (max - min of block means) / mean of a, b or c
    "temperature_offset_max": 0.05,  # |mean T - target| / target (warning)
    "significance_sigma": 2.0,       # a drift counts only beyond this many standard errors
    "min_production_ps": 2.0,        # below: too short to judge (unless the drift is huge)
    "short_run_factor": 2.0,         # a short run is drifting beyond this x the drift thresholds
    "n_blocks": 10,                  # block averaging of the production
}
QUANTITIES = {"volume_A3": "V", "a_A": "a", "b_A": "b", "c_A": "c"}


def block_means(x: np.ndarray, n_blocks: int) -> np.ndarray:
    """Means of ``n_blocks`` consecutive, nearly equal blocks of ``x``."""
    return np.array([b.mean() for b in np.array_split(np.asarray(x, float), n_blocks) if len(b)])


def drift_stats(time_ps: np.ndarray, x: np.ndarray, n_blocks: int = 10) -> dict[str, Any]:
    """Drift statistics of one quantity over ``time_ps`` (see the module docstring; all relative to the mean)."""
    t = np.asarray(time_ps, float)
    x = np.asarray(x, float)
    mean = float(x.mean())
    duration = float(t[-1] - t[0]) if len(t) > 1 else 0.0
    nb = int(min(n_blocks, len(x)))
    bx, bt = block_means(x, nb), block_means(t, nb)
    drift = se = None
    if nb >= 3 and duration > 0 and mean != 0:
        dt = bt - bt.mean()
        slope = float(dt @ (bx - bx.mean()) / (dt @ dt))
        resid = bx - bx.mean() - slope * dt
        se_slope = float(np.sqrt((resid @ resid) / (nb - 2) / (dt @ dt)))
        drift, se = slope * duration / mean, se_slope * duration / abs(mean)
    thirds = np.array_split(x, 3)
    change = float((thirds[-1].mean() - thirds[0].mean()) / mean) if len(x) >= 3 and mean else None
    return {
        "mean": mean,
        "sd": float(x.std()),
        "relative_sd": float(x.std() / abs(mean)) if mean else None,
        "relative_drift": drift,
        "relative_drift_stderr": se,
        "first_third_mean": float(thirds[0].mean()) if len(x) >= 3 else None,
        "last_third_mean": float(thirds[-1].mean()) if len(x) >= 3 else None,
        "relative_thirds_change": change,
        "block_means": [float(v) for v in bx],
        "relative_block_range": float((bx.max() - bx.min()) / abs(mean)) if mean and nb else None,
    }


def _problems(stats: dict[str, dict], thr: dict, duration_ps: float, factor: float = 1.0,
              wander: bool = True) -> list[dict]:
    """Flags of a drifting production (thresholds x ``factor``): ``{quantity, kind, value, reason}``."""
    out = []
    for key, name in QUANTITIES.items():
        s = stats.get(key)
        if s is None:
            continue
        limit = factor * thr["volume_drift_max" if key == "volume_A3" else "length_drift_max"]
        d, se = s["relative_drift"], s["relative_drift_stderr"]
        if d is not None and abs(d) > limit and abs(d) > thr["significance_sigma"] * se:
            out.append({"quantity": name, "kind": "drift", "value": d,
                        "reason": f"{name} drifts {100 * d:+.1f} +- {100 * se:.1f} % over the {duration_ps:.3g} ps "
                                  f"production (threshold {100 * limit:g} %)"})
        shape = stats.get(key + "_shape") or s
        rng = shape["relative_block_range"]
        if wander and key != "volume_A3" and rng is not None and rng > thr["length_wander_max"]:
            lo, hi = min(s["block_means"]), max(s["block_means"])
            out.append({"quantity": name, "kind": "wander", "value": rng,
                        "reason": f"cell length {name} wanders {lo:.1f}-{hi:.1f} Å (block means of {name}/V^(1/3) span "
                                  f"{100 * rng:.0f} % of the mean, threshold {100 * thr['length_wander_max']:g} %)"})
    return out


def short_verdict(result: dict) -> str:
    """Verdict with the flagged quantities, e.g. ``drifting (V +4.0 %; a, b wander)`` (legends, report page)."""
    flags = result.get("flags") or []
    if result.get("verdict") != "drifting" or not flags:
        return str(result.get("verdict"))
    parts = [f"{f['quantity']} {100 * f['value']:+.1f} %" for f in flags if f["kind"] == "drift"]
    wand = [f["quantity"] for f in flags if f["kind"] == "wander"]
    if wand:
        parts.append(", ".join(wand) + (" wanders" if len(wand) == 1 else " wander"))
    return f"drifting ({'; '.join(parts)})"


def _stats_of(t: np.ndarray, cols: dict[str, np.ndarray], n_blocks: int) -> dict[str, dict]:
    out = {k: drift_stats(t, cols[k], n_blocks) for k in QUANTITIES if k in cols}
    if "volume_A3" in cols:
        # shape: each length over V^(1/3). Wander is a shape test — under isotropic NPT the lengths
        # breathe with the volume (barostat ringing) while the shape cannot change.
        cube = np.cbrt(np.abs(cols["volume_A3"]))
        for k in ("a_A", "b_A", "c_A"):
            if k in cols and np.all(cube > 0):
                out[k + "_shape"] = drift_stats(t, cols[k] / cube, n_blocks)
    return out


def check_equilibration(thermo: dict[str, np.ndarray], *, target_T_K: float | None = None,
                        thresholds: dict | None = None) -> dict[str, Any]:
    """Verdict on the production part of ``thermo`` (columns of :func:`superion.md.storage.read_thermo`)."""
    thr = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    unknown = set(thresholds or {}) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise SuperionError(f"unknown equilibration threshold(s) {sorted(unknown)}; use {sorted(DEFAULT_THRESHOLDS)}")
    phase = np.asarray(thermo["phase"]).astype(str)
    prod = phase == "production"
    n_blocks = int(thr["n_blocks"])
    base: dict[str, Any] = {"format": FORMAT, "thresholds": thr, "reasons": [], "warnings": [], "notes": [], "flags": [],
                            "equilibrated_after_ps": None, "quantities": {}}
    if prod.sum() < 2:
        return {**base, "verdict": "too short to judge", "production": {"n_rows": int(prod.sum()), "duration_ps": 0.0},
                "reasons": [f"{int(prod.sum())} production row(s) in the thermo log"]}
    t = np.asarray(thermo["time_fs"], float)[prod] / 1000.0
    cols = {k: np.asarray(thermo[k], float)[prod] for k in (*QUANTITIES, "T_K", "P_bar") if k in thermo}
    duration = float(t[-1] - t[0])
    stats = _stats_of(t, cols, n_blocks)
    out = {**base, "production": {"start_ps": float(t[0]), "end_ps": float(t[-1]), "duration_ps": duration,
                                  "n_rows": int(prod.sum())}, "quantities": stats}
    T = cols.get("T_K")
    if T is not None:
        out["temperature"] = {"mean_K": float(T.mean()), "sd_K": float(T.std()), "target_K": target_T_K,
                              "relative_offset": (float(T.mean() / target_T_K - 1.0) if target_T_K else None)}
        off = out["temperature"]["relative_offset"]
        if off is not None and abs(off) > thr["temperature_offset_max"]:
            out["warnings"].append(f"mean T {T.mean():.0f} K is {100 * off:+.0f} % off the target {target_T_K:g} K")
    if "P_bar" in cols:
        out["pressure"] = {"mean_bar": float(cols["P_bar"].mean()), "sd_bar": float(cols["P_bar"].std())}
    if "volume_A3" in stats and stats["volume_A3"]["relative_sd"] == 0.0:
        out["notes"].append("volume fixed (NVT): only the temperature is checked")

    if duration < thr["min_production_ps"] or len(t) < 2 * n_blocks:
        # Blocks shorter than a barostat period: only a drift far beyond the threshold is trusted.
        flags = _problems(stats, thr, duration, factor=thr["short_run_factor"], wander=False)
        if flags:
            return {**out, "verdict": "drifting", "flags": flags, "reasons": [f["reason"] + " in a short run" for f in flags]}
        return {**out, "verdict": "too short to judge",
                "reasons": [f"production {duration:.3g} ps < {thr['min_production_ps']:g} ps (or < {2 * n_blocks} rows): "
                            "a drift cannot be told from a barostat oscillation"]}
    flags = _problems(stats, thr, duration)
    reasons = [f["reason"] for f in flags]
    out["equilibrated_after_ps"] = equilibrated_after_ps(t, cols, thr)
    if reasons and out["equilibrated_after_ps"] is not None:
        reasons.append(f"the production passes from {out['equilibrated_after_ps']:.3g} ps on: "
                       "equilibrate that long, or start the analysis window there")
    return {**out, "verdict": "drifting" if flags else "equilibrated", "flags": flags, "reasons": reasons}


def equilibrated_after_ps(t: np.ndarray, cols: dict[str, np.ndarray], thresholds: dict) -> float | None:
    """Earliest block start (ps) from which the rest of the production (>= min_production_ps) passes."""
    n_blocks = int(thresholds["n_blocks"])
    starts = [b[0] for b in np.array_split(np.arange(len(t)), n_blocks) if len(b)]
    for i in starts:
        tail_t = t[i:]
        if tail_t[-1] - tail_t[0] < thresholds["min_production_ps"] or len(tail_t) < 2 * n_blocks:
            return None
        tail = {k: v[i:] for k, v in cols.items()}
        if not _problems(_stats_of(tail_t, tail, n_blocks), thresholds, float(tail_t[-1] - tail_t[0])):
            return float(tail_t[0])
    return None


def check_run(run_dir: str | os.PathLike, *, thresholds: dict | None = None) -> dict[str, Any]:
    """:func:`check_equilibration` of a run directory (``thermo.csv``; target T and ensemble from ``metadata.json``)."""
    from superion import layout
    from superion.md.storage import read_thermo

    run_dir = Path(run_dir)
    path = layout.run_file(run_dir, "thermo") if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise SuperionError(f"no thermo log {path}; give an MD run directory (superion md --out RUN_DIR) or its thermo.csv")
    try:
        thermo = read_thermo(path)
    except (KeyError, ValueError) as exc:
        raise SuperionError(f"cannot read thermo log {path} ({exc}); is it a superion thermo.csv?") from None
    settings: dict = {}
    meta = path.parent / layout.METADATA_NAME
    if meta.is_file():
        settings = read_json_or(meta, {}).get("settings", {}) or {}
    result = check_equilibration(thermo, target_T_K=settings.get("temperature_K"), thresholds=thresholds)
    return {**result, "thermo": str(path), "ensemble": settings.get("ensemble"),
            "pdamp_fs": settings.get("pdamp_fs")}


def write_equilibration(run_dir: str | os.PathLike, out: str | os.PathLike, *,
                        thresholds: dict | None = None) -> dict[str, Any]:
    """:func:`check_run` written atomically as JSON to ``out``; returns the result."""
    from superion.atomic import write_json
    from superion.paths import check_writable

    check_writable(out)
    result = check_run(run_dir, thresholds=thresholds)
    write_json(out, result)
    return result


def summary_line(result: dict) -> str:
    """One line: verdict and its reasons (CLI)."""
    why = "; ".join(result.get("reasons") or [])
    return result["verdict"] + (f" ({why})" if why and result["verdict"] != "equilibrated" else "")


def read_equilibration(analysis_dir: str | os.PathLike) -> dict | None:
    """The run's ``equilibration.json`` (None if absent, {} if unreadable)."""
    from superion import layout

    path = layout.analysis_file(analysis_dir, "equilibration")
    return read_json_or(path, {}) if path.is_file() else None


def equilibration_verdict(analysis_dir: str | os.PathLike) -> str | None:
    """:func:`short_verdict` of the run's ``equilibration.json`` (a table column; None when not checked)."""
    result = read_equilibration(analysis_dir)
    return None if not result else short_verdict(result)


def equilibration_warnings(analysis_dir: str | os.PathLike) -> list[str]:
    """Table warnings of a run from its ``equilibration.json`` (none when the file is absent)."""
    result = read_equilibration(analysis_dir)
    if result is None:
        return []
    if not result:
        return ["unreadable equilibration.json: equilibration not checked"]
    out = []
    if result.get("verdict") == "drifting":
        out.append("NOT EQUILIBRIUM DATA: cell drifting in production (" + "; ".join(result.get("reasons") or []) + ")")
    elif result.get("verdict") == "too short to judge":
        out.append("equilibration not judged: " + "; ".join(result.get("reasons") or []))
    out += [str(w) for w in result.get("warnings") or []]
    return out
