"""M3GNet potentials: resolution, legacy-aggregation loading, self-check, device, ASE calculator.

Why this module exists: the shipped checkpoints were trained with matgl <= 2.2 (DGL), whose
M3GNet graph convolution summed node-update messages onto each edge's *destination* atom.
matgl >= 3.0 scatters them onto the *source* atom. Weights load "strictly" either way, so a
plain ``matgl.load_model`` silently gives wrong physics (0.04-2 eV/atom, up to 14 eV/A).
Here every legacy model instance gets destination aggregation back on its own conv layers
(no global monkeypatch), and a known-model fingerprint is checked at load time.
matgl <= 2.2 also indexed the three-body term by pruned-bond position; ``exact_dgl=True``
restores that too (bit-for-bit parity), but it is off by default because it makes the
energy jump when bonds cross the 4 A three-body cutoff (docs/matgl-m3gnet-aggregation-bug.md).

Units: energies eV, forces eV/A, stresses eV/A^3 in ASE sign (positive = tensile).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import socket
import threading
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from superion.atomic import file_sha256
from superion.provenance import software_versions
from superion.errors import SuperionError

if TYPE_CHECKING:  # pragma: no cover
    from ase import Atoms
    from ase.calculators.calculator import Calculator

log = logging.getLogger(__name__)

MODEL_FILES = ("model.json", "model.pt", "state.pt")
UNIVERSAL_MODEL = "M3GNet-MatPES-r2SCAN-v2025.1-PES"
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
KNOWN_MODELS_FILE = DATA_DIR / "known_models.json"
HF_ORG = "materialyze"
_HF_REPO_RE = re.compile(r"^[A-Za-z0-9][\w\-.]*/[\w\-.]+$")
_NET_PROBE_TIMEOUT_S = 3.0

_CACHE: dict[tuple, "LoadedPotential"] = {}


# ----------------------------------------------------------------------------------------
# device and threads
# ----------------------------------------------------------------------------------------
def select_device(device: str = "auto") -> str:
    """Return "cpu" or "cuda" for ``auto|cpu|cuda``; SuperionError if CUDA is asked but absent."""
    import torch

    dev = (device or "auto").lower()
    if dev == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cpu":
        return "cpu"
    if dev == "cuda" or dev.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise SuperionError(f"device '{device}' requested but torch sees no CUDA GPU; use --device cpu or auto")
        return dev
    raise SuperionError(f"unknown device '{device}'; use auto, cpu or cuda")


def set_threads(n: int | None) -> None:
    """Set torch intra-op threads (None leaves torch's default)."""
    if n is None:
        return
    if int(n) < 1:
        raise SuperionError(f"threads must be >= 1 (got {n}); omit it to keep torch's default")
    import torch

    torch.set_num_threads(int(n))


# ----------------------------------------------------------------------------------------
# known-model table
# ----------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def known_models_table() -> dict:
    """The packaged table: verified versions, fingerprint structures, models by name."""
    return json.loads(KNOWN_MODELS_FILE.read_text())


def known_model_names() -> list[str]:
    return list(known_models_table()["models"])


def fingerprint_atoms(structure: str) -> "Atoms":
    """The fixed small structure (from ../shared/parity) a fingerprint is evaluated on."""
    from ase import Atoms

    s = known_models_table()["structures"][structure]
    return Atoms(symbols=s["symbols"], positions=s["positions_A"], cell=s["cell_A"], pbc=s["pbc"])



def _known_by_sha(sha: str) -> tuple[str, dict] | None:
    for name, entry in known_models_table()["models"].items():
        if entry["state_sha256"] == sha:
            return name, entry
    return None


# ----------------------------------------------------------------------------------------
# legacy (destination) aggregation, per model instance
# ----------------------------------------------------------------------------------------
def _conv_classes():
    """(current M3GNetGraphConv, legacy subclass). Built lazily so importing is cheap."""
    global _LEGACY_CONV
    from matgl.layers._graph_convolution import M3GNetGraphConv

    if _LEGACY_CONV is None:
        import torch
        from matgl.utils.maths import scatter_add

        class LegacyM3GNetGraphConv(M3GNetGraphConv):
            """M3GNetGraphConv whose node update sums messages onto each edge's destination atom.

            This is what matgl <= 2.2 did with DGL's ``update_all(copy_e, sum)``; matgl >= 3.0
            scatters onto the source atom (``scatter_add(mess, src)``). Checkpoints trained
            with the old code are only correct with the old aggregation.
            """

            def node_update_(self, edge_index, edge_feat, node_feat, rbf, u_per_edge, num_nodes):
                src, dst = edge_index[0], edge_index[1]
                vi = node_feat[src]
                vj = node_feat[dst]
                if self.include_state:
                    inputs = torch.hstack([vi, vj, edge_feat, u_per_edge])
                else:
                    inputs = torch.hstack([vi, vj, edge_feat])
                mess = self.node_update_func(inputs) * self.node_weight_func(rbf)
                return scatter_add(mess, dst, dim_size=num_nodes, dim=0)

        _LEGACY_CONV = _publish(LegacyM3GNetGraphConv)
    return M3GNetGraphConv, _LEGACY_CONV


_LEGACY_CONV = None
_LAZY_CLASSES = {"LegacyM3GNetGraphConv": lambda: _conv_classes()[1],
                 "DGLExactM3GNet": lambda: _dgl_exact_classes()[0],
                 "DGLExactThreeBodyInteractions": lambda: _dgl_exact_classes()[1]}


def _publish(cls):
    """Make a lazily built class importable as ``superion.potential.<name>`` (pickling)."""
    cls.__module__ = __name__
    cls.__qualname__ = cls.__name__
    globals()[cls.__name__] = cls
    return cls


def __getattr__(name: str):
    # PEP 562: build the matgl subclasses on first access, so importing this module stays cheap
    if name in _LAZY_CLASSES:
        return _LAZY_CLASSES[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _dgl_exact_classes():
    """(M3GNet subclass, ThreeBodyInteractions subclass) reproducing matgl <= 2.2 bit for bit.

    matgl <= 2.2 (DGL, and PyG up to 4.0.3) built the three-body line graph on the bonds
    inside ``threebody_cutoff`` but then used those *pruned-list* positions as if they were
    parent-graph bond ids (neighbour atom k, cutoff weights, and the bond the message is
    summed onto). matgl 4.1 maps them to the parent bonds correctly. The mis-indexed term
    is what the checkpoints saw in training, but it makes the energy jump (meV) whenever a
    bond crosses the three-body cutoff, so it is opt-in (``exact_dgl=True``) for parity work.
    """
    global _DGL_CLASSES
    if _DGL_CLASSES is None:
        import torch
        from matgl.graph._compute import compute_pair_vector_and_distance, create_line_graph
        from matgl.layers._three_body import ThreeBodyInteractions
        from matgl.models import M3GNet

        class DGLExactThreeBodyInteractions(ThreeBodyInteractions):
            def forward(self, edge_dst_atom, line_edge_index, n_triple_ij, num_bonds, three_basis,
                        three_cutoff, node_feat, edge_feat):
                local = self.__dict__.get("_superion_local_id")
                if local is not None and line_edge_index.numel():
                    line_edge_index = local[line_edge_index.to(torch.long)]
                return super().forward(edge_dst_atom, line_edge_index, n_triple_ij, num_bonds, three_basis,
                                       three_cutoff, node_feat, edge_feat)

        class DGLExactM3GNet(M3GNet):
            def forward(self, g, state_attr=None, l_g=None, return_all_layer_output=False):
                pbc = getattr(g, "pbc_offshift", None)
                with torch.no_grad():
                    bond_vec, bond_dist = compute_pair_vector_and_distance(g.pos, g.edge_index, pbc)
                    l_g = create_line_graph(g.edge_index, bond_dist, bond_vec, pbc, g.pos.size(0),
                                            self.threebody_cutoff)
                    kept = l_g["kept_edge_ids"].to(torch.long)
                    local = torch.zeros(g.edge_index.size(1), dtype=torch.long, device=kept.device)
                    local[kept] = torch.arange(kept.numel(), device=kept.device)
                for tb in self.three_body_interactions:
                    tb.__dict__["_superion_local_id"] = local
                try:
                    return super().forward(g, state_attr=state_attr, l_g=l_g,
                                           return_all_layer_output=return_all_layer_output)
                finally:
                    for tb in self.three_body_interactions:
                        tb.__dict__.pop("_superion_local_id", None)

        _DGL_CLASSES = (_publish(DGLExactM3GNet), _publish(DGLExactThreeBodyInteractions))
    return _DGL_CLASSES


_DGL_CLASSES = None


def set_legacy_aggregation(module, legacy: bool, exact_dgl: bool = False) -> int:
    """Switch every M3GNet graph-conv layer inside ``module`` (one model instance) to
    destination (``legacy=True``) or source (``False``, current matgl) aggregation.

    ``exact_dgl=True`` (only with ``legacy``) also restores matgl <= 2.2's pruned-list
    three-body indexing (see :func:`_dgl_exact_classes`). Swaps the classes of this
    instance's layers only; parameters and other model instances are untouched.
    Returns the number of graph-conv layers switched (0 means not an M3GNet model).
    """
    from matgl.layers._three_body import ThreeBodyInteractions
    from matgl.models import M3GNet

    current, legacy_cls = _conv_classes()
    target = legacy_cls if legacy else current
    n = 0
    exact_model, exact_tb = _dgl_exact_classes()
    exact = bool(legacy and exact_dgl)
    # exact type checks: a user's own subclass of these layers is never replaced
    for sub in module.modules():
        if type(sub) in (current, legacy_cls):
            sub.__class__ = target
            n += 1
        elif type(sub) in (M3GNet, exact_model):
            sub.__class__ = exact_model if exact else M3GNet
        elif type(sub) in (ThreeBodyInteractions, exact_tb):
            sub.__class__ = exact_tb if exact else ThreeBodyInteractions
    return n


def uses_exact_dgl(module) -> bool:
    exact_model, _ = _dgl_exact_classes()
    return any(isinstance(m, exact_model) for m in module.modules())


def uses_legacy_aggregation(module) -> bool:
    _, legacy_cls = _conv_classes()
    return any(isinstance(m, legacy_cls) for m in module.modules())


# ----------------------------------------------------------------------------------------
# resolution
# ----------------------------------------------------------------------------------------
def _has_model_files(p: Path) -> bool:
    return p.is_dir() and all((p / f).is_file() for f in MODEL_FILES)


def default_models_dirs(models_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for ``<name>/``: explicit, $SUPERION_MODELS, then ../shared/models."""
    dirs: list[Path] = []
    if models_dir is not None:
        dirs.append(Path(models_dir).expanduser())
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
    if not s:
        raise SuperionError("empty potential name; give a model name (e.g. M3GNet-r2SCAN-NaBH) or a folder path")
    p = Path(s).expanduser()
    searched: list[str] = []
    if p.exists():
        if _has_model_files(p):
            return p.resolve().name, {f: p.resolve() / f for f in MODEL_FILES}, "path"
        missing = [f for f in MODEL_FILES if not (p / f).is_file()]
        raise SuperionError(f"'{s}' is not a matgl model folder (missing {', '.join(missing)}); "
                            "give a folder holding model.json, model.pt and state.pt")
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(s):
        raise SuperionError(f"model folder '{s}' does not exist; check the path or give a model name")
    searched.append(f"./{s}")
    for d in default_models_dirs(models_dir):
        cand = d / s
        searched.append(str(cand))
        if _has_model_files(cand):
            return s, {f: cand / f for f in MODEL_FILES}, "models_dir"
    return s, _hub_files(s, searched), "hub"


# ----------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------
def _read_checkpoint(files: dict[str, Path], name: str):
    """Build the matgl Potential from the three files, dropping constructor arguments the
    current ``Potential.__init__`` no longer accepts (e.g. ``calc_site_wise``) and loading
    the weights strictly (only the benign, derived ``*.onehot`` buffers may be absent)."""
    import torch
    from matgl.apps.pes import Potential

    try:
        meta = json.loads(Path(files["model.json"]).read_text())
        args = torch.load(files["model.pt"], map_location="cpu", weights_only=True)
        state = torch.load(files["state.pt"], map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SuperionError(f"cannot read model '{name}' ({type(exc).__name__}: {exc}); the files may be corrupt") from None
    if meta.get("@class") != "Potential" or not isinstance(args, dict) or "model" not in args:
        raise SuperionError(f"model '{name}' is a {meta.get('@class')}, not a matgl Potential; give an M3GNet PES model")
    m = args["model"]
    if isinstance(m, dict) and "@class" in m:
        import matgl.models

        cls = getattr(matgl.models, m["@class"], None)
        if cls is None:
            raise SuperionError(f"model '{name}' uses unknown architecture {m['@class']}; update matgl or pick another model")
        model = cls(**_accepted(cls, m["init_args"], name))
    else:
        model = m
    kwargs = {k: v for k, v in args.items() if k != "model" and not k.startswith("@")}
    pot = Potential(model=model, **_accepted(Potential, kwargs, name))
    own = pot.state_dict()
    state = {k: v for k, v in state.items() if not (k.endswith(".onehot") and k not in own)}
    try:
        pot.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise SuperionError(f"weights of model '{name}' do not match its architecture ({' '.join(first[1:2]).strip()[:200]}); "
                            "the checkpoint is incompatible with this matgl") from None
    pot.eval()
    return pot, meta


# Constructor arguments of old checkpoints that current matgl dropped and that do not affect
# energies, forces or stresses (M3GNet-r2SCAN-NaBH's Potential carries calc_site_wise=False).
_BENIGN_DROPPED = {"calc_site_wise"}


def _accepted(cls, kwargs: dict, name: str) -> dict:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    dropped = sorted(k for k in kwargs if k not in params)
    if set(dropped) - _BENIGN_DROPPED:  # an unknown architecture flag could change the physics: say so
        warnings.warn(f"model {name}: ignoring constructor argument(s) {dropped} that this matgl's "
                      f"{cls.__name__} does not accept; run 'superion potential check' on it", UserWarning, stacklevel=3)
    elif dropped:
        log.info("model %s: dropping constructor argument(s) %s unknown to %s", name, dropped, cls.__name__)
    return {k: v for k, v in kwargs.items() if k in params}


def _decide_legacy(sha: str, meta: dict, override: bool | None, name: str) -> tuple[bool, str | None, str]:
    """(legacy?, known name or None, reason). Order: override, sha256 table, model.json metadata."""
    known = _known_by_sha(sha)
    if override is not None:
        return bool(override), known[0] if known else None, "explicit override"
    if known:
        return bool(known[1]["legacy"]), known[0], f"known checkpoint {known[0]} (sha256)"
    md = meta.get("metadata") or {}
    if isinstance(md, dict):
        agg = str(md.get("aggregation", "")).lower()
        if agg in ("dst", "destination", "legacy"):
            return True, None, "model.json metadata aggregation=dst"
        if agg in ("src", "source", "current"):
            return False, None, "model.json metadata aggregation=src"
        ver = md.get("matgl_version") or md.get("matgl")
        if ver:
            major = int(re.match(r"\d+", str(ver)).group()) if re.match(r"\d+", str(ver)) else None
            if major is not None:
                return major < 3, None, f"model.json metadata matgl_version={ver}"
    differs = (f" (its state.pt differs from the verified '{name}', sha256 {sha[:12]})"
               if name in known_models_table()["models"] else "")
    warnings.warn(
        f"potential '{name}' is not a known checkpoint{differs}: assuming it was trained with current matgl "
        "(source aggregation) and skipping the fingerprint self-check; if it was trained with matgl <= 2.2, "
        "load it with legacy=True ('superion potential check --aggregation legacy' to compare)",
        UserWarning,
        stacklevel=3,
    )
    return False, None, "unknown checkpoint: current matgl assumed"


@dataclass
class LoadedPotential:
    """A loaded matgl Potential plus what superion knows about it."""

    potential: Any
    name: str
    path: Path | None
    legacy: bool
    element_types: tuple[str, ...]
    sha256: str
    device: str
    known_as: str | None = None
    where: str = "path"
    legacy_reason: str = ""
    exact_dgl: bool = False
    self_check_result: dict | None = field(default=None, repr=False)

    def record(self) -> dict:
        """What to store in run metadata: identity, aggregation mode, versions."""
        return {
            "name": self.name, "known_as": self.known_as, "path": str(self.path) if self.path else None,
            "sha256": self.sha256, "legacy_aggregation": self.legacy, "exact_dgl": self.exact_dgl,
            "legacy_reason": self.legacy_reason, "device": self.device, "versions": software_versions(PARITY_DISTRIBUTIONS, python=False),
            "self_check": self.self_check_result,
        }

    def check_elements(self, symbols: Iterable[str]) -> None:
        """SuperionError naming elements of ``symbols`` this potential was not trained on."""
        allowed = set(self.element_types)
        missing = sorted(set(symbols) - allowed)
        if missing:
            raise SuperionError(
                f"potential '{self.name}' has no parameters for element(s) {', '.join(missing)} "
                f"(it knows {', '.join(self.element_types) if len(allowed) < 12 else f'{len(allowed)} elements'}); "
                f"use a universal model such as {UNIVERSAL_MODEL}"
            )

    def calculator(self) -> "Calculator":
        """A fresh ASE calculator: energy eV, forces eV/A, stress eV/A^3 (ASE sign, Voigt)."""
        return _make_calculator(self.potential)

    def evaluate(self, atoms: "Atoms") -> tuple[float, Any, Any]:
        """(energy eV, forces (N,3) eV/A, stress (6,) eV/A^3) of ``atoms`` (not modified)."""
        a = atoms.copy()
        a.calc = self.calculator()
        return float(a.get_potential_energy()), a.get_forces(), a.get_stress()


def _make_calculator(potential):
    from matgl.ext.ase import PESCalculator

    # matgl logs a GPa warning at INFO/WARNING level; we ask for eV/A^3, which ASE expects.
    return PESCalculator(potential, stress_unit="eV/A3", use_voigt=True)


def run_self_check(lp: LoadedPotential, entry: dict | None = None) -> dict:
    """Compare the model's energy/forces on its fingerprint structure with the stored values.

    Raises SuperionError on mismatch; returns {"dE_meV_atom", "dF_eV_A", "structure"}.
    """
    import numpy as np

    if entry is None:
        entry = known_models_table()["models"][lp.known_as]
    fp = entry["fingerprint"]
    tol = entry["tolerance"]
    atoms = fingerprint_atoms(fp["structure"])
    e, f, _ = lp.evaluate(atoms)
    de = 1000.0 * abs(e - fp["energy_eV"]) / len(atoms)
    df = float(np.abs(np.asarray(f) - np.asarray(fp["forces_eV_A"])).max())
    out = {"structure": fp["structure"], "dE_meV_atom": de, "dF_eV_A": df}
    if not (de <= tol["energy_meV_atom"] and df <= tol["forces_eV_A"]):
        raise SuperionError(
            f"self-check failed for potential '{lp.name}' ({'legacy' if lp.legacy else 'current'} aggregation) "
            f"on {fp['structure']}: expected E={fp['energy_eV']:.4f} eV, got {e:.4f} eV "
            f"(|dE|={de:.2f} meV/atom, max|dF|={df:.3f} eV/A; tolerance {tol['energy_meV_atom']} meV/atom, "
            f"{tol['forces_eV_A']} eV/A); check the legacy setting and the matgl/torch-geometric versions "
            f"(verified: {_verified_str()}), or run 'superion potential check {lp.name}'"
        )
    return out


def _verified_str() -> str:
    v = known_models_table()["verified_with"]
    return ", ".join(f"{k} {x}" for k, x in v.items())


# The libraries the parity numbers depend on (keys of known_models.json "verified_with").
PARITY_DISTRIBUTIONS = ("matgl", "torch-geometric", "torch")


def load_potential(
    name_or_path: str | os.PathLike,
    *,
    device: str = "auto",
    legacy: bool | None = None,
    self_check: bool = True,
    models_dir: str | os.PathLike | None = None,
    exact_dgl: bool = False,
) -> LoadedPotential:
    """Load (or return the cached) potential ``name_or_path`` on ``device``.

    ``legacy=None`` decides destination vs source aggregation from the checkpoint (sha256
    table, then model.json metadata); True/False overrides. Known models are fingerprint-
    checked unless ``self_check=False``. Same name/device/legacy -> the same object.
    ``exact_dgl=True`` (legacy models only) reproduces matgl 2.2.1 to ~0.01 meV/atom, at the
    price of small energy jumps when bonds cross the three-body cutoff: parity work, not MD.
    """
    name, files, where = resolve_model(name_or_path, models_dir)  # first: bad names fail fast
    dev = select_device(device)
    state_path = Path(files["state.pt"]).resolve()
    key = (str(state_path), dev, legacy, bool(self_check), bool(exact_dgl))
    if key in _CACHE:
        return _CACHE[key]
    sha = file_sha256(state_path)
    pot, meta = _read_checkpoint(files, name)
    is_legacy, known_as, reason = _decide_legacy(sha, meta, legacy, name)
    if exact_dgl and not is_legacy:
        raise SuperionError(f"exact_dgl needs a legacy (matgl <= 2.2) checkpoint, but '{name}' is evaluated "
                            "with current aggregation; drop exact_dgl or set legacy=True")
    if set_legacy_aggregation(pot, is_legacy, exact_dgl=exact_dgl) == 0 and is_legacy:
        raise SuperionError(f"legacy aggregation requested for '{name}', but it has no M3GNet graph convolution; "
                            "use legacy only with M3GNet checkpoints")
    pot = pot.to(dev)
    lp = LoadedPotential(
        potential=pot,
        name=name,
        path=state_path.parent if where != "hub" else None,
        legacy=is_legacy,
        element_types=tuple(pot.model.element_types),
        sha256=sha,
        device=dev,
        known_as=known_as,
        where=where,
        legacy_reason=reason,
        exact_dgl=bool(exact_dgl),
    )
    if known_as and known_as != name and where != "path":
        log.warning("potential '%s' has the weights of known model '%s'", name, known_as)
    if self_check and known_as is not None:
        v = software_versions(PARITY_DISTRIBUTIONS, python=False)
        ver = known_models_table()["verified_with"]
        if any(v.get(k) is not None and not v[k].startswith(ver[k]) for k in ("matgl", "torch-geometric")):
            log.warning("matgl/torch-geometric %s differ from the verified %s", v, ver)
        lp.self_check_result = run_self_check(lp)
    _CACHE[key] = lp
    return lp


def get_calculator(
    name_or_path: str | os.PathLike,
    *,
    device: str = "auto",
    threads: int | None = None,
    legacy: bool | None = None,
    symbols: Iterable[str] | None = None,
) -> "Calculator":
    """ASE calculator for a potential (stress eV/A^3, ASE sign); checks ``symbols`` first."""
    set_threads(threads)
    lp = load_potential(name_or_path, device=device, legacy=legacy)
    if symbols is not None:
        lp.check_elements(symbols)
    return lp.calculator()


def clear_cache() -> None:
    """Forget loaded potentials (tests)."""
    _CACHE.clear()
