"""The model registry: known checkpoints, the folders searched for models, resolution by name.

Known models live in one table, ``superion/data/known_models.json``: sha256 of ``state.pt``,
aggregation (legacy = trained with matgl <= 2.2), elements, parity tolerances and a load-time
fingerprint. A model is found by explicit folder path, then as ``<dir>/<name>`` in the models
folders (:func:`default_models_dirs`), then on the Hugging Face hub (matgl cache first).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from superion.errors import SuperionError

if TYPE_CHECKING:  # pragma: no cover
    from ase import Atoms

MODEL_FILES = ("model.json", "model.pt", "state.pt")
UNIVERSAL_MODEL = "M3GNet-MatPES-r2SCAN-v2025.1-PES"
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
KNOWN_MODELS_FILE = DATA_DIR / "known_models.json"
HF_ORG = "materialyze"
# The libraries the parity numbers depend on (keys of known_models.json "verified_with").
PARITY_DISTRIBUTIONS = ("matgl", "torch-geometric", "torch")
_HF_REPO_RE = re.compile(r"^[A-Za-z0-9][\w\-.]*/[\w\-.]+$")
_NET_PROBE_TIMEOUT_S = 3.0


# ----------------------------------------------------------------------------------------
# known-model table
# ----------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def known_models_table() -> dict:
    """The packaged table: verified versions, fingerprint structures, models by name."""
    return json.loads(KNOWN_MODELS_FILE.read_text())


def known_model_names() -> list[str]:
    """Names of the known models, in table order."""
    return list(known_models_table()["models"])


def known_elements(name: str) -> frozenset[str] | None:
    """Elements the known model ``name`` was trained on; None for universal models and unknown names."""
    entry = known_models_table()["models"].get(str(name))
    if entry is None or entry.get("elements") is None:
        return None
    return frozenset(entry["elements"])


def known_by_sha256(sha: str) -> tuple[str, dict] | None:
    """(name, table entry) of the known model whose state.pt has this sha256, else None."""
    for name, entry in known_models_table()["models"].items():
        if entry["state_sha256"] == sha:
            return name, entry
    return None


def fingerprint_atoms(structure: str) -> "Atoms":
    """The fixed small structure (from ../shared/parity) a fingerprint is evaluated on."""
    from ase import Atoms

    s = known_models_table()["structures"][structure]
    return Atoms(symbols=s["symbols"], positions=s["positions_A"], cell=s["cell_A"], pbc=s["pbc"])


def verified_versions_str() -> str:
    """The library versions the table was verified with, e.g. 'matgl 4.1.2, torch 2.13.0'."""
    v = known_models_table()["verified_with"]
    return ", ".join(f"{k} {x}" for k, x in v.items())


# ----------------------------------------------------------------------------------------
# resolution
# ----------------------------------------------------------------------------------------
def has_model_files(p: Path) -> bool:
    """True if ``p`` is a folder holding model.json, model.pt and state.pt."""
    return p.is_dir() and all((p / f).is_file() for f in MODEL_FILES)


def default_models_dirs(models_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for ``<name>/``: explicit, $SUPERION_MODELS, then ../shared/models."""
    dirs: list[Path] = []
    if models_dir is not None:  # $VARS too: a config value reaches here verbatim through the rules
        dirs.append(Path(os.path.expandvars(os.fspath(models_dir))).expanduser())
    if os.environ.get("SUPERION_MODELS"):
        dirs.append(Path(os.environ["SUPERION_MODELS"]).expanduser())
    if os.environ.get("SUPERION_SHARED"):
        dirs.append(Path(os.environ["SUPERION_SHARED"]).expanduser() / "models")
    # A source checkout with ../shared beside it (the README/CI layout) works with no setting.
    dirs.append(Path(__file__).resolve().parents[3].parent / "shared" / "models")
    out: list[Path] = []
    for d in dirs:
        d = d.resolve()
        if d not in out:
            out.append(d)
    return out


def _looks_like_path(s: str) -> bool:
    return s.startswith((".", "/", "~")) or s.endswith(os.sep) or (os.sep in s and not _HF_REPO_RE.match(s))


def _network_reachable(host: str = "huggingface.co", port: int = 443, timeout: float = _NET_PROBE_TIMEOUT_S) -> bool:
    """True if a TCP connection to ``host`` opens within ``timeout`` s (DNS included)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def _hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "SUPERION_OFFLINE"))


def _hub_files(name: str, searched: list[str]) -> dict[str, Path]:
    """Model files from the matgl cache or the Hugging Face hub; fail fast when offline."""
    repo_id = name if _HF_REPO_RE.match(name) else f"{HF_ORG}/{name}"
    searched.append(f"hub cache/{repo_id}")
    try:
        from huggingface_hub import hf_hub_download
    except Exception:  # pragma: no cover - matgl always brings huggingface_hub
        raise _not_found(name, searched) from None
    # matgl.config.MATGL_CACHE, without importing matgl (2-3 s) just to fail on a bad name
    kw = dict(repo_id=repo_id, cache_dir=str(Path.home() / ".cache" / "matgl"))
    try:
        return {f: Path(hf_hub_download(filename=f, local_files_only=True, **kw)) for f in MODEL_FILES}
    except Exception:
        pass
    searched.append(f"https://huggingface.co/{repo_id}")
    if _hub_offline() or not _network_reachable():
        raise _not_found(name, searched, offline=True)
    try:
        return {f: Path(hf_hub_download(filename=f, **kw)) for f in MODEL_FILES}
    except Exception as exc:
        raise SuperionError(
            f"potential '{name}' not found (searched: {', '.join(searched)}; hub said {type(exc).__name__}); "
            "check the name or give a path to a folder with model.json/model.pt/state.pt"
        ) from None


def _not_found(name: str, searched: list[str], offline: bool = False) -> SuperionError:
    extra = " (offline: hub not reachable)" if offline else ""
    return SuperionError(
        f"potential '{name}' not found{extra}; searched: {', '.join(searched)}; "
        "give a path to a folder with model.json/model.pt/state.pt or set SUPERION_MODELS"
    )


def resolve_model(name_or_path: str | os.PathLike, models_dir: str | os.PathLike | None = None) -> tuple[str, dict[str, Path], str]:
    """Find a model: explicit path -> ``<models_dir>/<name>`` -> hub (cache, then download).

    Returns (display name, {file: path}, where) with ``where`` one of "path", "models_dir", "hub".
    """
    s = str(name_or_path).strip()
    searched: list[str] = []
    local = _find_local(name_or_path, models_dir, searched)
    if local is not None:
        name, folder, where = local
        return name, {f: folder / f for f in MODEL_FILES}, where
    return s, _hub_files(s, searched), "hub"


def _find_local(name_or_path: str | os.PathLike, models_dir: str | os.PathLike | None,
                searched: list[str]) -> tuple[str, Path, str] | None:
    """(name, folder, "path" | "models_dir") of a model on disk, None if only the hub may have it.

    SuperionError for an empty name and for a path that is not a model folder; appends the
    places looked at to ``searched``.
    """
    s = str(name_or_path).strip()
    if not s:
        raise SuperionError("empty potential name; give a model name (e.g. M3GNet-r2SCAN-NaBH) or a folder path")
    p = Path(s).expanduser()
    if p.exists():
        if has_model_files(p):
            return p.resolve().name, p.resolve(), "path"
        missing = [f for f in MODEL_FILES if not (p / f).is_file()]
        raise SuperionError(f"'{s}' is not a matgl model folder (missing {', '.join(missing)}); "
                            "give a folder holding model.json, model.pt and state.pt")
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(s):
        raise SuperionError(f"model folder '{s}' does not exist; check the path or give a model name")
    searched.append(f"./{s}")
    for d in default_models_dirs(models_dir):
        cand = d / s
        searched.append(str(cand))
        if has_model_files(cand):
            return s, cand, "models_dir"
    return None


def model_available(name_or_path: str | os.PathLike, models_dir: str | os.PathLike | None = None) -> bool:
    """True if :func:`resolve_model` will find this model without asking the hub for an unknown name:
    a model folder path, ``<dir>/<name>`` in :func:`default_models_dirs`, or a known model name
    (found locally or fetched from the hub). Cheap: reads no weights, opens no connection."""
    try:
        if _find_local(name_or_path, models_dir, []) is not None:
            return True
    except SuperionError:
        return False
    return str(name_or_path).strip() in known_models_table()["models"]


# ----------------------------------------------------------------------------------------
# listing
# ----------------------------------------------------------------------------------------
@dataclass
class ModelEntry:
    """One model of :func:`list_models`: a known one (found or not) or a local unknown folder."""

    name: str
    aggregation: str  # "legacy" | "current" (known models) | "unknown"
    sha256: str  # of state.pt: the table's for known models, the file's for unknown ones
    folder: Path | None  # where it was found locally, None if not
    found_sha256: str | None = None  # of the local state.pt (known models found locally)

    @property
    def known(self) -> bool:
        return self.aggregation != "unknown"

    @property
    def weights_differ(self) -> bool:
        """A known name whose local state.pt is not the verified one."""
        return self.known and self.found_sha256 is not None and self.found_sha256 != self.sha256


def list_models(models_dir: str | os.PathLike | None = None) -> tuple[list[ModelEntry], list[Path]]:
    """(known models in table order, then model folders in the search dirs not in the table; dirs searched)."""
    from superion.atomic import file_sha256

    dirs = default_models_dirs(models_dir)
    seen: set[Path] = set()
    out: list[ModelEntry] = []
    for name, entry in known_models_table()["models"].items():
        row = ModelEntry(name, "legacy" if entry["legacy"] else "current", entry["state_sha256"], None)
        for d in dirs:
            if has_model_files(d / name):
                row.folder, row.found_sha256 = d / name, file_sha256(d / name / "state.pt")
                seen.add((d / name).resolve())
                break
        out.append(row)
    for d in dirs:  # model folders present but not in the table
        if not d.is_dir():
            continue
        for sub in sorted(d.iterdir()):
            if sub.resolve() in seen or not has_model_files(sub):
                continue
            seen.add(sub.resolve())
            out.append(ModelEntry(sub.name, "unknown", file_sha256(sub / "state.pt"), sub))
    return out, dirs
