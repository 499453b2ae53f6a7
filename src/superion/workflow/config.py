"""Workflow configuration: load, validate once at the edge, expand into runs and paths.

One JSON schema (``superion/schemas/config.schema.json``) is used both by the Snakefile
(``snakemake.utils.validate``) and here. :func:`validate_config` adds what a schema cannot
say (unknown system or mass setting in a reference, unknown potential, missing structure
file, a mobile species or a mass-scaled cluster the structure does not hold, time settings
that do not fit each other) and reports the first problem as one line
(:class:`~superion.errors.SuperionError`). Defaults come from the schema.

Paths come from :mod:`superion.layout`. Times in ps/fs, temperatures in K, lengths in Å.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from superion.errors import SuperionError
from superion.layout import path, temp_tag
from superion.potential import registry

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.json"


# --------------------------------------------------------------------------------------
# loading and validation


def load_schema() -> dict:
    """The JSON schema (a fresh copy)."""
    return json.loads(SCHEMA_PATH.read_text())


def _read_mapping(path: Path) -> dict:
    if not path.is_file():
        raise SuperionError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml/json syntax errors: one line
        msg = " ".join(str(exc).split())
        raise SuperionError(f"config {path}: cannot parse: {msg}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SuperionError(f"config {path}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


def load_config(path: str | os.PathLike, *, check_files: bool = True, base_dir: str | os.PathLike | None = None) -> dict:
    """Read a YAML/JSON config, validate it and return it with defaults filled in.

    ``name`` defaults to the file's stem. Relative structure paths are checked against
    ``base_dir`` (default: the current directory, as Snakemake runs jobs there).
    """
    path = Path(path)
    data = _read_mapping(path)
    data.setdefault("name", path.stem)
    return validate_config(data, source=str(path), check_files=check_files, base_dir=base_dir)


def _fmt_path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<top level>"


def _error_line(err) -> str:
    """One readable line for a jsonschema ValidationError."""
    where = _fmt_path(err.absolute_path)
    v, inst = err.validator, err.instance
    if v == "additionalProperties":
        allowed = sorted((err.schema.get("properties") or {}).keys())
        extra = re.findall(r"'([^']*)'", err.message.split("(")[-1]) or [err.message]
        hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key {', '.join(repr(e) for e in extra)}{hint}"
    if v == "minItems" and inst == []:
        return f"{where}: must not be empty"
    if v == "minProperties" and inst == {}:
        return f"{where}: must not be empty"
    if v in ("exclusiveMinimum", "minimum") and "temperatures_K" in where:
        return f"{where}: temperature {inst!r} K is not positive; temperatures must be > 0 K"
    if v in ("exclusiveMinimum", "minimum") and where.startswith("mass_settings."):
        return f"{where}: mass factor {inst!r} must be > 0 (1 = unscaled)"
    if v == "not" and isinstance(inst, dict) and "supercell" in inst and "min_width_A" in inst:
        return f"{where}: give either supercell or min_width_A, not both"
    if v == "type":
        want = err.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return f"{where}: {inst!r} is not of type {want}"
    if v == "required":
        return f"{where}: {err.message}"
    if v == "oneOf" and where.endswith("active_normalization"):
        return f"{where}: {inst!r} must be 'n_ions' or a positive integer"
    if v == "pattern":
        return f"{where}: {inst!r} is not a valid name (letters, digits, _ . + -; element symbol for species)"
    return f"{where}: {err.message}"


def _defaults_validator():
    import jsonschema
    from jsonschema import Draft202012Validator, validators

    base_props = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(prop, copy.deepcopy(sub["default"]))
        yield from base_props(validator, properties, instance, schema)

    del jsonschema
    return validators.extend(Draft202012Validator, {"properties": set_defaults})


def schema_errors(cfg: dict) -> list[str]:
    """Schema problems of ``cfg`` as one-line messages (``cfg`` gets defaults filled in)."""
    from jsonschema.exceptions import relevance

    cls = _defaults_validator()
    errors = sorted(cls(load_schema()).iter_errors(cfg), key=relevance)
    # best first: deepest, most specific error (jsonschema's relevance ranks weakest first)
    errors = sorted(errors, key=lambda e: (-len(list(e.absolute_path)), relevance(e)))
    return [_error_line(e) for e in errors]


def validate_config(cfg: dict, *, source: str = "config", check_files: bool = True,
                    base_dir: str | os.PathLike | None = None) -> dict:
    """Validate ``cfg`` (schema + semantics); return a deep copy with defaults filled in.

    Raises :class:`SuperionError` with one line naming ``source``, the key and the fix.
    """
    cfg = copy.deepcopy(dict(cfg))
    errs = schema_errors(cfg)
    if errs:
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        raise SuperionError(f"config {source}: {errs[0]}{more}")
    problem = _semantic_problem(cfg, check_files=check_files, base_dir=Path(base_dir or "."))
    if problem:
        raise SuperionError(f"config {source}: {problem}")
    cfg.setdefault("name", "config")
    return cfg


def models_dirs(cfg: dict) -> list[Path]:
    """Folders searched for potentials by name: config ``models_dir`` first, then the
    potential registry's own (:func:`superion.potential.registry.default_models_dirs`)."""
    return registry.default_models_dirs(cfg.get("models_dir") or None)


def models_dir_arg(cfg: dict) -> str:
    """``--models-dir DIR`` (shell-quoted) for commands that load a potential, or "" if unset."""
    import shlex

    return f"--models-dir {shlex.quote(str(cfg['models_dir']))}" if cfg.get("models_dir") else ""


def potential_known(cfg: dict, name: str) -> bool:
    """True if ``name`` is a known model name, a model folder in :func:`models_dirs`, or a model
    folder path: what ``superion relax/md --models-dir`` will resolve (the registry decides)."""
    return registry.model_available(name, cfg.get("models_dir") or None)


def _semantic_problem(cfg: dict, *, check_files: bool, base_dir: Path) -> str | None:
    from superion.structures.clusters import KNOWN_CLUSTERS

    systems = cfg["systems"]
    masses = cfg["mass_settings"]
    known_clusters = set(KNOWN_CLUSTERS.values())
    for mname, scale in masses.items():
        for ctype in scale:
            if ctype not in known_clusters:
                return (f"mass_settings.{mname}: unknown cluster type {ctype!r}; "
                        f"known: {', '.join(sorted(known_clusters))}")
    for s in cfg.get("run_systems", []):
        if s not in systems:
            return f"run_systems: unknown system {s!r}; defined systems: {', '.join(systems)}"
    refs = [m for m, scale in masses.items() if not scale]
    for sname, sysc in systems.items():
        where = f"systems.{sname}"
        for m in sysc.get("mass_settings", []):
            if m not in masses:
                return f"{where}.mass_settings: unknown mass setting {m!r}; defined: {', '.join(masses)}"
        if "mass_settings" not in sysc and not refs:
            return (f"{where}: no mass_settings given and no unscaled reference (a setting with {{}}) "
                    "defined; list the settings to run for this system")
        pot = sysc["potential"]
        if not potential_known(cfg, pot):
            dirs = ", ".join(str(d) for d in models_dirs(cfg))
            return (f"{where}.potential: unknown potential {pot!r}; known names: "
                    f"{', '.join(registry.known_model_names())} (models folders searched: {dirs}; "
                    "a folder needs model.json, model.pt and state.pt)")
        md = system_section(cfg, sname, "md")
        ratio = md["save_every_fs"] / md["timestep_fs"]
        if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
            return (f"{where}: save_every_fs {md['save_every_fs']} is not a whole multiple of "
                    f"timestep_fs {md['timestep_fs']}")
        problem = _time_problem(where, md)
        if problem:
            return problem
        an = system_section(cfg, sname, "analysis")
        if an["fit_start_ps"] is not None and an["fit_end_ps"] is not None and an["fit_end_ps"] <= an["fit_start_ps"]:
            return f"{where}: fit_end_ps must be larger than fit_start_ps"
        if an["fit_end_ps"] is not None and an["fit_end_ps"] > md["production_ps"] + 1e-9:
            return f"{where}: fit_end_ps {an['fit_end_ps']} exceeds production_ps {md['production_ps']}"
        if an["fit_start_ps"] is not None and an["fit_start_ps"] >= md["production_ps"]:
            return f"{where}: fit_start_ps {an['fit_start_ps']} is not inside production_ps {md['production_ps']}"
        if check_files:
            spath = Path(sysc["structure"])
            if not spath.is_absolute():
                spath = base_dir / spath
            if not spath.is_file():
                return f"{where}.structure: file not found: {sysc['structure']} (paths are relative to the working directory)"
            elements = _structure_elements(spath)
            allowed = registry.known_elements(pot)
            if allowed is not None and elements and not elements <= allowed:
                bad = ", ".join(sorted(elements - allowed))
                return (f"{where}: potential {pot} does not cover element(s) {bad}; "
                        "use a universal potential (e.g. M3GNet-MatPES-r2SCAN-v2025.1-PES)")
            if elements and sysc["mobile_species"] not in elements:
                return (f"{where}.mobile_species: {sysc['mobile_species']} is not in {sysc['structure']} "
                        f"(elements: {', '.join(sorted(elements))}); fix the species or the structure")
            scaled = {m: sorted(masses[m]) for m in system_mass_settings(cfg, sname) if masses[m]}
            if scaled:
                problem = _cluster_problem(where, spath, sysc["structure"], scaled)
                if problem:
                    return problem
    return None


def _time_problem(where: str, md: dict) -> str | None:
    """Production and equilibration must be whole numbers of save intervals (MD saves a frame
    every interval, and ``superion md`` refuses anything else), and give the analysis >= 3 frames."""
    save = md["save_every_fs"]
    for key in ("production_ps", "equilibration_ps"):
        n = md[key] * 1000.0 / save
        if abs(n - round(n)) > 1e-6 * max(1.0, n):
            return (f"{where}: md.{key} {md[key]:g} ps is not a whole multiple of save_every_fs {save:g} fs; "
                    f"use e.g. {round(n) * save / 1000.0:g} ps")
    frames = round(md["production_ps"] * 1000.0 / save)
    if frames < 3:
        return (f"{where}: production_ps {md['production_ps']:g} ps gives {frames} frame(s) at save_every_fs "
                f"{save:g} fs; the analysis needs at least 3")
    return None


def _cluster_problem(where: str, path: Path, name: str, scaled: dict[str, list[str]]) -> str | None:
    """A mass setting that scales a cluster type the structure does not hold (``superion md``
    would refuse it after prepare and relax). Clusters are labelled on the fully occupied sites;
    a type whose elements also sit on partially occupied sites may only form when ordering, so it
    is let through."""
    from superion.structures.clusters import KNOWN_CLUSTERS, label_clusters
    from superion.structures.io import read_pymatgen, to_atoms

    try:
        structure = read_pymatgen(path, check_overlap=False)
    except SuperionError as exc:
        return f"{where}.structure: {exc}"
    disordered = {sp.symbol for site in structure if not site.is_ordered for sp in site.species}
    ordered = structure.copy()
    ordered.remove_sites([i for i, site in enumerate(structure) if not site.is_ordered])
    present = set(label_clusters(to_atoms(ordered)).types) if len(ordered) else set()
    elements_of = {t: {el for el, _ in key} for key, t in KNOWN_CLUSTERS.items()}
    for mname, types in scaled.items():
        for t in types:
            if t in present or elements_of.get(t, set()) & disordered:
                continue
            return (f"{where}: mass setting {mname!r} scales {t}, which is not in {name} "
                    f"(clusters there: {', '.join(sorted(present)) or 'none'}); use another mass setting for this "
                    "system (systems.<name>.mass_settings)")
    return None


def _structure_elements(path: Path) -> set[str] | None:
    """Element symbols in a structure file, or None if it cannot be read cheaply."""
    try:
        if path.suffix.lower() == ".cif":
            # the _atom_site_type_symbol column without a full CIF parser (disorder is fine)
            text = path.read_text(errors="replace")
            syms = set()
            lines = text.splitlines()
            for i, line in enumerate(lines):
                if line.strip() == "loop_":
                    cols, j = [], i + 1
                    while j < len(lines) and lines[j].strip().startswith("_"):
                        cols.append(lines[j].strip().split()[0]); j += 1
                    if "_atom_site_type_symbol" in cols:
                        k = cols.index("_atom_site_type_symbol")
                        while j < len(lines) and lines[j].strip() and not lines[j].strip().startswith(("_", "loop_", "#")):
                            parts = lines[j].split()
                            if len(parts) > k:
                                m = re.match(r"[A-Z][a-z]?", parts[k])
                                if m:
                                    syms.add(m.group(0))
                            j += 1
            return syms or None
        from ase.io import read

        return set(read(str(path)).get_chemical_symbols())
    except Exception:
        return None


# --------------------------------------------------------------------------------------
# expansion: systems, runs, settings


def selected_systems(cfg: dict) -> list[str]:
    """System names to run, in config order."""
    sel = cfg.get("run_systems")
    return [s for s in cfg["systems"] if sel is None or s in sel]


def system_section(cfg: dict, system: str, section: str) -> dict:
    """Global ``section`` (md, relax, analysis, prepare) overridden by the system's keys."""
    out = dict(cfg.get(section, {}))
    out.update(cfg["systems"][system].get(section, {}))
    return out


def system_temperatures(cfg: dict, system: str) -> list[float]:
    return list(cfg["systems"][system].get("temperatures_K", cfg["temperatures_K"]))


def system_seeds(cfg: dict, system: str) -> list[int]:
    return list(cfg["systems"][system].get("seeds", cfg["seeds"]))


def system_mass_settings(cfg: dict, system: str) -> list[str]:
    sysc = cfg["systems"][system]
    if "mass_settings" in sysc:
        return list(sysc["mass_settings"])
    return [m for m, scale in cfg["mass_settings"].items() if not scale][:1]


@dataclass(frozen=True)
class Run:
    """One MD run: system × mass setting × temperature × replica seed."""

    system: str
    mass: str
    temperature_K: float
    seed: int

    @property
    def wildcards(self) -> dict:
        return {"system": self.system, "mass": self.mass, "T": temp_tag(self.temperature_K), "seed": str(self.seed)}


def runs(cfg: dict, system: str | None = None, mass: str | None = None) -> list[Run]:
    """All MD runs of the sweep (optionally of one system / mass setting)."""
    out = []
    for s in selected_systems(cfg):
        if system is not None and s != system:
            continue
        for m in system_mass_settings(cfg, s):
            if mass is not None and m != mass:
                continue
            for t in system_temperatures(cfg, s):
                for seed in system_seeds(cfg, s):
                    out.append(Run(s, m, float(t), int(seed)))
    return out


def groups(cfg: dict) -> list[tuple[str, str]]:
    """(system, mass setting) pairs: one Arrhenius fit and one summary row each."""
    return [(s, m) for s in selected_systems(cfg) for m in system_mass_settings(cfg, s)]


def md_steps(cfg: dict, system: str) -> dict:
    """MD step counts of a system: steps, equilibration_steps, save_every (integers)."""
    md = system_section(cfg, system, "md")
    dt = md["timestep_fs"]
    return {
        "steps": max(1, int(round(md["production_ps"] * 1000.0 / dt))),
        "equilibration_steps": int(round(md["equilibration_ps"] * 1000.0 / dt)),
        "save_every": max(1, int(round(md["save_every_fs"] / dt))),
    }


def mass_scale_args(cfg: dict, mass: str) -> list[str]:
    """``--mass-scale`` values of a mass setting, e.g. ['B12H12=10']."""
    return [f"{k}={v:g}" for k, v in cfg["mass_settings"][mass].items()]


def mass_series(cfg: dict, mass: str) -> tuple[str, float]:
    """(scaled cluster set, factor) of a mass setting: ('B12H12', 10), ('B12H12+BH4', 5), ('ref', 1).

    Mixed factors give the largest as the factor.
    """
    scale = cfg["mass_settings"][mass]
    scaled = {k: v for k, v in scale.items() if v != 1}
    if not scaled:
        return "ref", 1.0
    return "+".join(sorted(scaled)), float(max(scaled.values()))


def run_dir(cfg: dict, run: Run) -> Path:
    return path(cfg, "run", **run.wildcards)


def analysis_dir(cfg: dict, run: Run) -> Path:
    return path(cfg, "analysis", **run.wildcards)


# md_batch: auto. Peak memory of one M3GNet forward + backward, measured on o-NBH (CPU, float32,
# 128-1024 atoms): ~1.3 MB per atom; 1.5 leaves room for the allocator. A fifth of the GPU is
# kept free. Denser or larger-cutoff systems need more: set md_batch to an integer then.
MD_BATCH_MB_PER_ATOM = 1.5
MD_BATCH_MAX_AUTO = 32
DEFAULT_GPU_MEMORY_GB = 16.0
# Config keys that choose how runs execute, not what they compute: not written to config.json,
# so switching batching on or off reruns no table or figure.
EXECUTION_KEYS = ("md_batch", "gpu_memory_GB")


@dataclass(frozen=True)
class MDBatch:
    """One ``superion md-batch`` job: runs of one system and mass setting (``index``-th chunk)."""

    system: str
    mass: str
    index: int
    runs: tuple[Run, ...]


def md_batch_size(cfg: dict, system: str) -> int | None:
    """Replicas per batched job of ``system`` (None: batching off, one job per run)."""
    setting = cfg.get("md_batch", "off")
    if setting is False or setting == "off" or setting is None:
        return None
    if setting is True or setting == "auto":
        atoms = _estimate_atoms(cfg, system) or 1024
        mem_GB = cfg.get("gpu_memory_GB") or gpu_memory_GB()
        return max(1, min(MD_BATCH_MAX_AUTO, int(0.8 * mem_GB * 1000 / (MD_BATCH_MB_PER_ATOM * atoms))))
    return int(setting)


def gpu_memory_GB() -> float:
    """Memory of the first CUDA device (GB), or :data:`DEFAULT_GPU_MEMORY_GB` when there is none."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_properties(0).total_memory / 1e9
    except Exception:  # no usable torch/CUDA here (e.g. a login node): the default
        pass
    return DEFAULT_GPU_MEMORY_GB


def md_batches(cfg: dict) -> list[MDBatch]:
    """Batched MD jobs: each (system, mass setting)'s runs in consecutive chunks of nearly equal
    size, at most :func:`md_batch_size` each; [] when batching is off."""
    out = []
    for system, mass in groups(cfg):
        size = md_batch_size(cfg, system)
        if size is None:
            return []
        rs = runs(cfg, system=system, mass=mass)
        n = -(-len(rs) // size)  # ceil: chunks of nearly equal size rather than full ones and a rest
        start = 0
        for k in range(n):
            stop = start + len(rs) // n + (1 if k < len(rs) % n else 0)
            out.append(MDBatch(system, mass, k, tuple(rs[start:stop])))
            start = stop
    return out


def estimate_cost(cfg: dict) -> dict:
    """Rough MD cost: atoms per system (None if unknown) and total atom-steps."""
    out: dict[str, Any] = {"systems": {}, "atom_steps": 0, "complete": True}
    for s in selected_systems(cfg):
        n = _estimate_atoms(cfg, s)
        st = md_steps(cfg, s)
        nruns = len(runs(cfg, system=s))
        steps = nruns * (st["steps"] + st["equilibration_steps"])
        out["systems"][s] = {"atoms": n, "runs": nruns, "md_steps": steps}
        if n is None:
            out["complete"] = False
        else:
            out["atom_steps"] += n * steps
    return out


def _estimate_atoms(cfg: dict, system: str) -> int | None:
    """Atoms of the system's prepared supercell (of the ordered model when the input is disordered),
    chosen as ``superion prepare`` chooses it; None if the structure cannot be read."""
    from superion.structures.io import read_pymatgen
    from superion.structures.supercell import choose_supercell, ordered_atoms_per_cell

    sysc = cfg["systems"][system]
    try:
        structure = read_pymatgen(sysc["structure"])
        choice = choose_supercell(structure.lattice.matrix, supercell=sysc.get("supercell"),
                                  min_width_A=sysc.get("min_width_A"))
    except SuperionError:
        return None
    return int(round(ordered_atoms_per_cell(structure))) * choice.n_cells
