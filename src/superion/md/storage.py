"""Run-directory storage of the MD engine besides the trajectory: thermo log and checkpoint.

Both are plain files (CSV, NPZ) written atomically or flushed at each checkpoint; the engine
hands over plain arrays, so a batched engine reuses them unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from superion.atomic import atomic_path, json_default, write_text
from superion.errors import SuperionError
from superion.killpoints import kill_point

THERMO_COLUMNS = (
    "step", "time_fs", "phase", "T_K", "P_bar", "volume_A3", "a_A", "b_A", "c_A",
    "epot_eV", "ekin_eV", "conserved_eV",
)



# --------------------------------------------------------------------------- thermo log
class ThermoLog:
    """``thermo.csv``: one row per save step (equilibration and production, ``phase`` column)."""

    def __init__(self, path: str | os.PathLike, keep_rows: int | None = None) -> None:
        """Open for appending; ``keep_rows=None`` starts a new file, else keeps that many rows."""
        self.path = Path(path)
        header = ",".join(THERMO_COLUMNS) + "\n"
        if keep_rows is None:
            write_text(self.path, header)
            self.n_rows = 0
        else:
            lines = self.path.read_text().splitlines(keepends=True) if self.path.exists() else []
            rows = lines[1 : 1 + keep_rows]
            if len(rows) < keep_rows or any(not r.endswith("\n") for r in rows):
                raise SuperionError(
                    f"{self.path} has fewer complete rows than the checkpoint expects; "
                    "the run directory is inconsistent: delete it and rerun"
                )
            write_text(self.path, header + "".join(rows))
            self.n_rows = keep_rows
        self._fh = open(self.path, "a", buffering=1 << 16)

    def append(self, row: dict[str, Any]) -> None:
        vals = []
        for c in THERMO_COLUMNS:
            v = row[c]
            vals.append(repr(float(v)) if isinstance(v, (float, np.floating)) else str(v))
        self._fh.write(",".join(vals) + "\n")
        self.n_rows += 1

    def flush(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def read_thermo(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``thermo.csv`` as columns (``phase`` as str array, the rest float/int)."""
    import csv

    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out: dict[str, np.ndarray] = {}
    for c in THERMO_COLUMNS:
        vals = [r[c] for r in rows]
        if c == "phase":
            out[c] = np.array(vals, dtype=str)
        elif c == "step":
            out[c] = np.array(vals, dtype=np.int64)
        else:
            out[c] = np.array(vals, dtype=float)
    return out


# --------------------------------------------------------------------------- checkpoint
def write_checkpoint(path: str | os.PathLike, state: dict[str, np.ndarray], info: dict) -> None:
    """Atomically write integrator ``state`` arrays plus JSON-able ``info`` (step, counters, hash)."""
    arrays = {f"state/{k}": np.asarray(v) for k, v in state.items()}
    arrays["info_json"] = np.array(json.dumps(info, default=json_default))
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        kill_point("checkpoint-tmp", int(info.get("step", -1)))


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """(state arrays, info) from :func:`write_checkpoint`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["info_json"]))
            state = {k[len("state/"):]: z[k] for k in z.files if k.startswith("state/")}
    except (OSError, ValueError, KeyError) as exc:
        raise SuperionError(f"cannot read checkpoint {path} ({exc}); delete the run directory and rerun") from None
    return state, info


