"""Build recipes (YAML): reading them, cluster orientations, anion frames and the candidate list."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from superion.errors import SuperionError
from superion.structures.build.contacts import relax_ions_soft, soft_sphere_score
from superion.structures.build.crystal import ClusterPlacement, Frame, expand_clusters, make_atoms
from superion.structures.build.sites import cation_configurations
from superion.structures.lattice import lattice_from
from superion.structures.templates import template


def load_recipe(path: str | Path) -> dict:
    """Read and check a YAML build recipe (see ``structures/recipes/*.yaml``)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise SuperionError(f"recipe {path} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SuperionError(f"recipe {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SuperionError(f"recipe {path} must be a mapping")
    for key in ("name", "cell", "clusters", "potential"):
        if key not in data:
            raise SuperionError(f"recipe {path}: missing key {key!r}")
    for c in data["clusters"]:
        if "name" not in c or "centre" not in c:
            raise SuperionError(f"recipe {path}: every cluster needs 'name' and 'centre'")
        template(c["name"])  # unknown names raise a SuperionError
    unknown = set(data) - {"name", "description", "potential", "cell", "reference_cell", "spacegroup", "expected_counts",
                           "clusters", "cations", "screen", "seed", "provenance", "fixed_symmetry"}
    if unknown:
        raise SuperionError(f"recipe {path}: unknown keys {sorted(unknown)}")
    data.setdefault("seed", 0)
    data.setdefault("spacegroup", None)
    data.setdefault("screen", {})
    return data


def _rotation_from(spec: dict | None) -> np.ndarray:
    """Rotation matrix from a recipe spec: {axis, angle_deg} | {euler_deg, seq} | {matrix} | None."""
    from superion.structures.templates import axis_rotation, euler_rotation

    if not spec or spec.get("identity"):
        return np.eye(3)
    if "matrix" in spec:
        return np.asarray(spec["matrix"], float)
    if "axis" in spec:
        return axis_rotation(spec["axis"], float(spec.get("angle_deg", 0.0)))
    if "euler_deg" in spec:
        return euler_rotation(spec["euler_deg"], spec.get("seq", "zyz"))
    raise SuperionError(f"rotation spec {spec} needs 'axis'+'angle_deg', 'euler_deg' or 'matrix'")


def orientation_choices(entry: dict, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """(label, rotation) choices of one cluster entry: base rotation, then a grid or random set."""
    from superion.structures.templates import axis_rotation, random_rotation

    base = _rotation_from(entry.get("base_rotation"))
    spec = entry.get("orientations")
    if not spec:
        return [("base", base)]
    out = []
    if "angles_deg" in spec:
        axis = spec.get("axis", [0, 0, 1])
        for ang in spec["angles_deg"]:
            out.append((f"{ang:g}", axis_rotation(axis, float(ang)) @ base))
    if "list" in spec:
        for k, sub in enumerate(spec["list"]):
            out.append((sub.get("label", f"l{k}"), _rotation_from(sub) @ base))
    if "random" in spec:
        for k in range(int(spec["random"])):
            out.append((f"r{k}", random_rotation(rng) @ base))
    if not out:
        raise SuperionError(f"orientations {spec} needs 'angles_deg' (with 'axis'), 'list' or 'random'")
    return out


def make_frames(recipe: dict, lattice: np.ndarray) -> list[Frame]:
    """All anion frames of a recipe (product of orientation choices), deterministic order."""
    rng = np.random.default_rng(recipe["seed"])
    choices = [orientation_choices(e, rng) for e in recipe["clusters"]]
    frames = []
    for combo in itertools.product(*choices):
        placements = [ClusterPlacement(e["name"], np.asarray(e["centre"], float), rot)
                      for e, (_, rot) in zip(recipe["clusters"], combo)]
        key = "|".join(f"{e['name']}@{lab}" for e, (lab, _) in zip(recipe["clusters"], combo))
        try:
            sy, pos, cen = expand_clusters(lattice, placements, recipe["spacegroup"])
        except SuperionError:
            continue  # orientation incompatible with the site symmetry: not a candidate
        frames.append(Frame(key, sy, pos, cen, placements))
    if not frames:
        raise SuperionError(f"recipe {recipe['name']}: no orientation is compatible with space group {recipe['spacegroup']}")
    return frames


def build_candidates(recipe: dict) -> list[dict]:
    """Every candidate of a recipe (frames × cation configurations), cheap-scored and sorted.

    Each candidate dict holds ``id``, ``frame``, ``cations`` (origin, Ewald energy), ``atoms``,
    ``soft_penalty_A2`` (after the soft cation pre-optimization) and ``score``. The order and
    content depend only on the recipe and its seed.
    """
    lattice = lattice_from(recipe["cell"])
    frames = make_frames(recipe, lattice)
    cands: list[dict] = []
    cat = recipe.get("cations")
    conf_cache: dict[str, list[dict]] = {}
    for frame in frames:
        if cat:
            # Ewald with centre charges depends only on the centres: reuse it across orientations
            ckey = ";".join(f"{n}{np.round(c, 4).tolist()}" for n, c in frame.centres)
            if ckey not in conf_cache:
                conf_cache[ckey] = cation_configurations(recipe, lattice, frame)
            configs = conf_cache[ckey]
        else:
            configs = [{"frac": np.zeros((0, 3)), "ewald_eV": 0.0, "origin": "none", "sites": [], "site_labels": []}]
        for k, conf in enumerate(configs):
            ions = [(cat["symbol"], f) for f in conf["frac"]] if cat else []
            ions += [(s, np.asarray(f, float)) for s, f in ((cat or {}).get("fixed_ions") or [])]
            atoms = make_atoms(lattice, frame.symbols, frame.positions, ions)
            mobile = [i for i, s in enumerate(atoms.get_chemical_symbols()) if cat and s == cat["symbol"]]
            pen = relax_ions_soft(atoms, mobile) if recipe["screen"].get("soft_relax", True) else 0.0
            soft = soft_sphere_score(atoms)
            cands.append({"id": f"{frame.key}#{k}", "frame": frame.key, "cation_config": k,
                          "cation_origin": conf["origin"], "ewald_eV": conf["ewald_eV"],
                          "cation_site_labels": conf["site_labels"],
                          "soft_penalty_A2": pen, "overlap_A2": soft, "atoms": atoms})
    # score: Ewald (eV) plus 1 eV/Å² of residual overlap. Orientations barely change the Ewald
    # energy of centre charges, so order round-robin over cation arrangements (best orientation
    # of each arrangement first, arrangements by Ewald energy) to keep the short list diverse.
    for c in cands:
        c["score"] = c["ewald_eV"] + c["overlap_A2"] + c["soft_penalty_A2"]
    groups: dict[str, list[dict]] = {}
    for c in sorted(cands, key=lambda c: (round(c["score"], 6), c["id"])):
        groups.setdefault(f"{round(c['ewald_eV'], 3)}", []).append(c)
    for g in groups.values():
        for r, c in enumerate(g):
            c["rank_in_group"] = r
    cands.sort(key=lambda c: (c["rank_in_group"], round(c["score"], 6), c["id"]))
    return cands
