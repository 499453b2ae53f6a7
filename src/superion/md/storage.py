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
            lines = (self.path.read_bytes().decode("utf-8", "replace").splitlines(keepends=True)
                     if self.path.exists() else [])
            rows = lines[1 : 1 + keep_rows]
            # a row the kill cut short, or garbled, has another number of fields
            if len(rows) < keep_rows or any(not r.endswith("\n") or r.count(",") != len(THERMO_COLUMNS) - 1
                                            for r in rows):
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
    from superion.files import read_csv

    fix = "the run directory is damaged: delete it and rerun superion md"
    rows = read_csv(path, fix=fix, columns=THERMO_COLUMNS)
    out: dict[str, np.ndarray] = {}
    for c in THERMO_COLUMNS:
        vals = [r[c] for r in rows]
        try:
            if c == "phase":
                out[c] = np.array(vals, dtype=str)
            elif c == "step":
                out[c] = np.array(vals, dtype=np.int64)
            else:
                out[c] = np.array(vals, dtype=float)
        except ValueError:
            raise SuperionError(f"{path}: column {c} holds a value that is not a number; {fix}") from None
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
    """(state arrays, info) from :func:`write_checkpoint`; SuperionError when damaged."""
    from superion.files import read_npz

    fix = "delete the checkpoint (the run restarts from step 0) or the run directory, and rerun"
    z = read_npz(path, fix=fix, keys=("info_json",))
    try:
        info = json.loads(str(z["info_json"]))
        if not isinstance(info, dict) or "step" not in info:
            raise ValueError("no step")
    except ValueError:  # includes JSONDecodeError
        raise SuperionError(f"{path} holds no valid checkpoint info; {fix}") from None
    state = {k[len("state/"):]: v for k, v in z.items() if k.startswith("state/")}
    return state, info
