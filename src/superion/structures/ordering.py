"""Partial occupancies → ordered models, ranked by Ewald energy, optionally re-ranked by M3GNet.

Steps (all deterministic for a given ``seed``):

1. Oxidation states: a per-element table (Li+ Na+ P5+ S2- Cl- ...; overridable). Atoms of a
   molecular ion (found with :func:`superion.structures.clusters.label_clusters` on the fully occupied
   sites) share the cluster's formal charge (``CLUSTER_CHARGE``): the element table when it
   sums to that charge (PS4: P5+ 4×S2-, BH4: B3+ 4×H-), otherwise spread evenly (B12H12).
2. Disordered sites are grouped by their (species, occupancy) dict, as pymatgen does. Each
   group's occupancies × site count are rounded to integers by the largest-remainder method
   (so a group stays exactly full); rounding is recorded and warned about when it changes
   the composition by more than 0.01 atom.
3. If the number of configurations is at most ``max_enumeration``: pymatgen's
   ``OrderDisorderedStructureTransformation`` (Ewald minimizer, ``return_ranked_list``).
   Otherwise (e.g. Li6PS5Cl: 48 half-occupied Li sites → C(48,24) ≈ 3e13 configurations, which
   pymatgen does not finish in minutes): ``n_samples`` seeded simulated-annealing runs of
   site swaps on the exact Ewald energy (from one unit-charge Ewald matrix, E = qᵀMq), each
   finished by steepest-descent swaps; distinct local minima are ranked by Ewald energy.
4. Optional: the best ``rerank`` candidates are relaxed briefly with an M3GNet calculator
   (positions only by default) and the lowest energy per atom is chosen.

Limitation (enforced, not silent): sites of molecular ions must be fully occupied. A
partially occupied site within bonding distance of a cluster atom (or of another such
site), e.g. orientationally disordered BH4 hydrogens, is refused with one line, because
site-by-site ordering could break or fuse clusters. Order such clusters by hand or with the
builder. The ordered structure is returned unrelaxed (run ``superion relax`` after).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from superion.structures.clusters import BOND_CUTOFFS_A, CATIONS, CLUSTER_CHARGE, label_clusters
from superion.errors import SuperionError

# Formal charges of lone ions (and of cluster atoms when they add up to the cluster charge).
OXIDATION_STATES: dict[str, float] = {
    "H": -1, "Li": 1, "Na": 1, "K": 1, "Rb": 1, "Cs": 1, "Ag": 1, "Cu": 1,
    "Mg": 2, "Ca": 2, "Sr": 2, "Ba": 2, "Zn": 2, "Al": 3, "Ga": 3, "In": 3, "Y": 3, "La": 3,
    "B": 3, "C": 4, "Si": 4, "Ge": 4, "Sn": 4, "Ti": 4, "Zr": 4, "P": 5, "As": 5, "Sb": 5,
    "N": -3, "O": -2, "S": -2, "Se": -2, "Te": -2, "F": -1, "Cl": -1, "Br": -1, "I": -1,
}

DEFAULT_N_CANDIDATES = 20
DEFAULT_MAX_ENUMERATION = 200_000  # pymatgen does ~5e6 configurations/min; keep it to seconds
DEFAULT_N_SAMPLES = 48
VACANCY = "X"  # label of an empty site in group bookkeeping


@dataclass
class Candidate:
    """One ordered model: Ewald energy (eV, total for the cell) and optional M3GNet numbers."""

    structure: Any = field(repr=False)
    ewald_eV: float
    rank_ewald: int
    m3gnet_eV_per_atom: float | None = None
    m3gnet_relax_steps: int | None = None
    m3gnet_converged: bool | None = None

    def to_dict(self) -> dict:
        return {
            "rank_ewald": self.rank_ewald,
            "ewald_eV": self.ewald_eV,
            "formula": self.structure.composition.formula.replace(" ", ""),
            "m3gnet_eV_per_atom": self.m3gnet_eV_per_atom,
            "m3gnet_relax_steps": self.m3gnet_relax_steps,
            "m3gnet_converged": self.m3gnet_converged,
        }


@dataclass
class OrderingResult:
    """The chosen ordered structure (pymatgen, no oxidation states), candidates and a JSON record."""

    structure: Any
    candidates: list[Candidate]
    record: dict


def parse_oxidation_states(text: str | None) -> dict[str, float]:
    """``"Li=1,S=-2"`` → {"Li": 1.0, "S": -2.0}; SuperionError on bad syntax."""
    out: dict[str, float] = {}
    if not text:
        return out
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise SuperionError(f"bad oxidation state '{item}'; write e.g. Li=1,S=-2")
        el, val = item.split("=", 1)
        try:
            out[el.strip()] = float(val)
        except ValueError:
            raise SuperionError(f"bad oxidation state '{item}'; write e.g. Li=1,S=-2") from None
    return out


def _site_dict(site) -> dict[str, float]:
    return {str(getattr(sp, "symbol", sp)): float(occ) for sp, occ in site.species.items()}


def _bondable(a: str, b: str) -> float | None:
    if a in CATIONS or b in CATIONS:
        return None
    return BOND_CUTOFFS_A.get((a, b)) or BOND_CUTOFFS_A.get((b, a))


def _largest_remainder(targets: dict[str, float], n: int) -> dict[str, int]:
    floors = {k: int(math.floor(v + 1e-9)) for k, v in targets.items()}
    left = n - sum(floors.values())
    order = sorted(targets, key=lambda k: (-(targets[k] - floors[k]), k))
    for k in order[: max(0, left)]:
        floors[k] += 1
    return floors


def order_structure(
    structure,
    *,
    seed: int = 0,
    n_candidates: int = DEFAULT_N_CANDIDATES,
    max_enumeration: int = DEFAULT_MAX_ENUMERATION,
    n_samples: int = DEFAULT_N_SAMPLES,
    oxidation_states: dict[str, float] | None = None,
    calculator=None,
    rerank: int = 0,
    relax_fmax: float = 0.1,
    relax_steps: int = 60,
    relax_cell: bool = False,
) -> OrderingResult:
    """Order a pymatgen ``structure`` with partial occupancies (see module docstring).

    ``calculator``: an ASE calculator used to re-rank the best ``rerank`` Ewald candidates
    after a short relaxation (``relax_steps`` steps to ``relax_fmax`` eV/Å). An ordered input
    is returned unchanged with ``record["disordered"] = False``.
    """
    from pymatgen.core import Structure

    if n_candidates < 1:
        raise SuperionError(f"n_candidates must be >= 1, got {n_candidates}; use e.g. 20")
    if rerank < 0:
        raise SuperionError(f"rerank must be >= 0, got {rerank}")
    if rerank and calculator is None:
        raise SuperionError("re-ranking by M3GNet energy needs a potential; pass --potential NAME or drop --rerank")
    structure = structure.copy()
    structure.remove_oxidation_states()
    if structure.is_ordered:
        return OrderingResult(structure, [], {"disordered": False})

    table = dict(OXIDATION_STATES)
    table.update(oxidation_states or {})
    warn: list[str] = []

    ordered_idx = [i for i, s in enumerate(structure) if s.is_ordered]
    dis_idx = [i for i, s in enumerate(structure) if not s.is_ordered]

    # --- molecular ions among the fully occupied sites, and the guard against breaking them
    charges = np.zeros(len(structure))
    cluster_counts: dict[str, int] = {}
    if ordered_idx:
        sub = Structure.from_sites([structure[i] for i in ordered_idx])
        from pymatgen.io.ase import AseAtomsAdaptor

        labels = label_clusters(AseAtomsAdaptor.get_atoms(sub))
        cluster_counts = labels.counts()
        for pos, i in enumerate(ordered_idx):
            if labels.cluster_id[pos] < 0:
                charges[i] = _charge(sub[pos].specie.symbol, table)
        for k, ctype in enumerate(labels.types):
            members = labels.members(k)
            symbols = [sub[int(m)].specie.symbol for m in members]
            total = CLUSTER_CHARGE.get(ctype)
            if total is None:
                total = float(sum(_charge(s, table) for s in symbols))
                warn.append(f"unknown cluster {ctype}: charge {total:+g} from the element table")
            q_table = [table.get(s) for s in symbols]
            consistent = None not in q_table and abs(sum(q_table) - total) < 1e-6
            per_atom = q_table if consistent else [total / len(members)] * len(members)
            for m, q in zip(members, per_atom):
                charges[ordered_idx[int(m)]] = q
    max_cut = max(BOND_CUTOFFS_A.values())
    for i in dis_idx:
        species_i = list(_site_dict(structure[i]))
        for nb in structure.get_neighbors(structure[i], max_cut):
            j = nb.index
            for a in species_i:
                for b in _site_dict(structure[j]):
                    cut = _bondable(a, b)
                    if cut is not None and nb.nn_distance < cut:
                        raise SuperionError(
                            f"partially occupied site {i} ({a}) is {nb.nn_distance:.2f} Å from site {j} ({b}), within "
                            "bonding distance of a molecular ion; ordering site by site could break clusters, so give "
                            "a structure whose cluster atoms are fully occupied (order the clusters by hand or with the builder)"
                        )

    # --- groups of equivalent disordered sites and their integer counts
    groups: list[dict] = []
    for i in dis_idx:
        d = _site_dict(structure[i])
        for g in groups:
            if set(g["occupancy"]) == set(d) and all(abs(g["occupancy"][k] - d[k]) < 1e-4 for k in d):
                g["sites"].append(i)
                break
        else:
            groups.append({"occupancy": d, "sites": [i]})
    n_config_log10 = 0.0
    for g in groups:
        n = len(g["sites"])
        targets = {k: v * n for k, v in g["occupancy"].items()}
        targets[VACANCY] = n - sum(targets.values())
        counts = _largest_remainder(targets, n)
        g["counts"] = {k: c for k, c in counts.items() if c > 0}
        g["targets"] = targets
        dev = max(abs(counts[k] - targets[k]) for k in targets)
        if dev > 0.01:
            warn.append(
                f"occupancies {g['occupancy']} on {n} sites rounded to counts {g['counts']} "
                f"(max change {dev:.2f} atom); a larger ordering cell (--order-in-supercell) keeps the composition closer"
            )
        n_config_log10 += (math.lgamma(n + 1) - sum(math.lgamma(c + 1) for c in counts.values())) / math.log(10)
        # charge of each species on this group's sites (fails early, one line, if unknown)
        g["charges"] = {sp: (0.0 if sp == VACANCY else _charge(sp, table)) for sp in g["counts"]}

    net = float(sum(charges[i] for i in ordered_idx)) + sum(
        _charge(sp, table) * c for g in groups for sp, c in g["counts"].items() if sp != VACANCY
    )
    if abs(net) > 1e-3:
        warn.append(f"ordered cell is not charge neutral with the assumed oxidation states (net {net:+.3f} e)")

    record: dict[str, Any] = {
        "disordered": True,
        "seed": int(seed),
        "oxidation_states": {el: table[el] for el in sorted({s.symbol for s in structure.composition.elements}) if el in table},
        "fixed_clusters": cluster_counts,
        "net_charge_e": net,
        "groups": [
            {
                "n_sites": len(g["sites"]),
                "occupancy": g["occupancy"],
                "target_counts": {k: round(v, 4) for k, v in g["targets"].items() if v > 1e-9},
                "counts": g["counts"],
            }
            for g in groups
        ],
        "n_configurations_log10": round(n_config_log10, 3),
        "warnings": warn,
    }

    if n_config_log10 <= math.log10(max(1, max_enumeration)) and not _pymatgen_groups_merge(groups):
        cands = _enumerate_pymatgen(structure, groups, charges, n_candidates)
        record["method"] = "pymatgen OrderDisorderedStructureTransformation (Ewald minimizer, ALGO_FAST)"
    else:
        cands, info = _anneal(structure, groups, charges, n_candidates, n_samples, seed)
        why = "enumeration too large" if n_config_log10 > math.log10(max(1, max_enumeration)) else (
            "pymatgen would merge site groups")
        record["method"] = f"seeded simulated annealing of site swaps on the Ewald energy ({why})"
        record.update(info)

    chosen = 0
    record["chosen_by"] = "ewald"
    if rerank and calculator is not None:
        from superion.structures.relax import relax_structure
        from superion.structures.io import to_atoms

        for c in cands[:rerank]:
            r = relax_structure(
                to_atoms(c.structure), calculator, fmax=relax_fmax, max_steps=relax_steps, relax_cell=relax_cell
            )
            c.m3gnet_eV_per_atom = r.energy_per_atom_eV
            c.m3gnet_relax_steps = r.steps
            c.m3gnet_converged = r.converged
        scored = [k for k, c in enumerate(cands[:rerank]) if c.m3gnet_eV_per_atom is not None]
        chosen = min(scored, key=lambda k: (cands[k].m3gnet_eV_per_atom, k))
        record["chosen_by"] = "m3gnet"
        record["rerank"] = {"n": min(rerank, len(cands)), "fmax_eV_A": relax_fmax, "max_steps": relax_steps,
                            "relax_cell": relax_cell}
    record["candidates"] = [c.to_dict() for c in cands]
    record["chosen_rank_ewald"] = cands[chosen].rank_ewald
    for w in warn:
        warnings.warn(w, stacklevel=2)
    return OrderingResult(cands[chosen].structure, cands, record)


def _charge(symbol: str, table: dict[str, float]) -> float:
    if symbol not in table:
        raise SuperionError(
            f"no oxidation state known for element {symbol}; pass one, e.g. --oxidation-states {symbol}=1"
        )
    return float(table[symbol])


def _build(structure, assignment: dict[int, str]):
    """Ordered Structure: fully occupied sites as they are, disordered ones from ``assignment``."""
    from pymatgen.core import Structure

    species, coords = [], []
    for i, site in enumerate(structure):
        sp = site.specie.symbol if site.is_ordered else assignment[i]
        if sp == VACANCY:
            continue
        species.append(sp)
        coords.append(site.frac_coords)
    return Structure(structure.lattice, species, coords)


def _distinct(cands: list[tuple[float, Any]], n: int) -> list[tuple[float, Any]]:
    """Lowest ``n`` of (energy, payload), dropping equal energies (symmetry-equivalent images)."""
    out: list[tuple[float, Any]] = []
    for e, payload in sorted(cands, key=lambda t: t[0]):
        if out and abs(e - out[-1][0]) <= 1e-9 * max(1.0, abs(e)):
            continue
        out.append((e, payload))
        if len(out) == n:
            break
    return out


def _pymatgen_groups_merge(groups) -> bool:
    """True if pymatgen would merge two of our groups (it groups by almost-equal species, rtol 0.1)."""
    from pymatgen.core import Composition

    comps = [Composition({k: v / len(g["sites"]) for k, v in g["counts"].items() if k != VACANCY}) for g in groups]
    return any(comps[a].almost_equals(comps[b]) for a in range(len(comps)) for b in range(a + 1, len(comps)))


def _enumerate_pymatgen(structure, groups, charges, n_candidates) -> list[Candidate]:
    from pymatgen.core import Species, Structure
    from pymatgen.transformations.standard_transformations import OrderDisorderedStructureTransformation

    group_of = {i: g for g in groups for i in g["sites"]}
    sites_sp, coords = [], []
    for i, site in enumerate(structure):
        if site.is_ordered:
            sites_sp.append({Species(site.specie.symbol, float(charges[i])): 1.0})
        else:
            g = group_of[i]
            n = len(g["sites"])
            sites_sp.append({Species(sp, g["charges"][sp]): c / n for sp, c in g["counts"].items() if sp != VACANCY})
        coords.append(site.frac_coords)
    decorated = Structure(structure.lattice, sites_sp, coords)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranked = OrderDisorderedStructureTransformation().apply_transformation(
            decorated, return_ranked_list=4 * n_candidates
        )
    pairs = _distinct([(float(item["energy"]), item["structure"]) for item in ranked], n_candidates)
    out = []
    for k, (e, s) in enumerate(pairs):
        s = s.copy()
        s.remove_oxidation_states()
        out.append(Candidate(structure=s, ewald_eV=e, rank_ewald=k))
    return out


def unit_ewald_matrix(structure) -> np.ndarray:
    """Symmetric matrix M (eV) with Ewald energy E = qᵀ M q for site charges q (e) of ``structure``.

    All Ewald terms (real, reciprocal, self) are quadratic in the charges, so one summation
    with unit charges gives the energy of every occupation of the sites. The charged-cell
    term is left out; it is constant for configurations with the same total charge.
    """
    from pymatgen.analysis.ewald import EwaldSummation
    from pymatgen.core import Species, Structure

    unit = Structure(structure.lattice, [Species("H", 1)] * len(structure), structure.frac_coords)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "charged cell" warning: expected for unit charges
        m = np.asarray(EwaldSummation(unit).total_energy_matrix, dtype=float)
    return 0.5 * (m + m.T)


def _anneal(structure, groups, charges, n_candidates, n_samples, seed, sweeps=20, t_hot_eV=1.0, t_cold_eV=0.005):
    """Seeded simulated annealing of same-group site swaps, then steepest descent, ``n_samples`` times."""
    m = unit_ewald_matrix(structure)
    diag = np.diag(m).copy()
    rng = np.random.default_rng(int(seed))
    movable = [g for g in groups if len(g["counts"]) > 1]
    g_sites = [np.asarray(g["sites"], dtype=int) for g in movable]
    pools = [np.array([sp for sp, c in sorted(g["counts"].items()) for _ in range(c)], dtype=object) for g in movable]
    weights = np.array([len(s) for s in g_sites], dtype=float)
    n_dis = int(weights.sum()) if len(weights) else 0
    n_steps = sweeps * max(n_dis, 1)
    temps = t_hot_eV * (t_cold_eV / t_hot_eV) ** (np.arange(n_steps) / max(n_steps - 1, 1))
    # Groups with a single species (e.g. all sites of a group vacant or full) are fixed.
    fixed_assign = {i: next(iter(g["counts"])) for g in groups if len(g["counts"]) == 1 for i in g["sites"]}

    minima: list[tuple[float, dict]] = []
    for _ in range(int(n_samples)):
        q = np.array(charges, dtype=float)
        lab: dict[int, str] = dict(fixed_assign)
        for g, sites, pool in zip(movable, g_sites, pools):
            for i, sp in zip(sites, rng.permutation(pool)):
                lab[int(i)] = sp
                q[i] = g["charges"][sp]
        for i, sp in fixed_assign.items():
            q[i] = next(g["charges"][sp] for g in groups if i in g["sites"])
        v = m @ q
        if movable:
            gk = rng.choice(len(movable), size=n_steps, p=weights / weights.sum())
            ua = rng.random(n_steps)
            ub = rng.random(n_steps)
            acc = rng.random(n_steps)
            for step in range(n_steps):
                sites = g_sites[gk[step]]
                a = int(sites[int(ua[step] * len(sites))])
                b = int(sites[int(ub[step] * len(sites))])
                if lab[a] == lab[b]:
                    continue
                d = q[b] - q[a]
                de = 2.0 * d * (v[a] - v[b]) + d * d * (diag[a] + diag[b] - 2.0 * m[a, b])
                if de <= 0.0 or acc[step] < math.exp(-de / temps[step]):
                    q[a], q[b] = q[b], q[a]
                    lab[a], lab[b] = lab[b], lab[a]
                    v += d * (m[:, a] - m[:, b])
            _descend(m, diag, q, v, lab, g_sites)
        minima.append((float(q @ m @ q), lab))
    best = _distinct(minima, n_candidates)
    cands = [Candidate(structure=_build(structure, lab), ewald_eV=e, rank_ewald=k) for k, (e, lab) in enumerate(best)]
    info = {
        "annealing": {
            "n_samples": int(n_samples), "sweeps": sweeps, "T_hot_eV": t_hot_eV, "T_cold_eV": t_cold_eV,
            "n_distinct_minima": len(_distinct(minima, len(minima))),
            "ewald_minima_eV": sorted(round(e, 6) for e, _ in minima),
        }
    }
    return cands, info


def _descend(m, diag, q, v, lab, g_sites, max_iter: int = 100_000) -> None:
    """Apply the best energy-lowering same-group swap until none is left (in place)."""
    for _ in range(max_iter):
        best = (-1e-9, None, None)
        for sites in g_sites:
            qs, vs = q[sites], v[sites]
            d = qs[None, :] - qs[:, None]  # d[a, b]: charge gained by site a when swapped with b
            de = 2.0 * d * (vs[:, None] - vs[None, :]) + d * d * (
                diag[sites][:, None] + diag[sites][None, :] - 2.0 * m[np.ix_(sites, sites)]
            )
            k = int(np.argmin(de))
            if de.flat[k] < best[0]:
                best = (float(de.flat[k]), int(sites[k // len(sites)]), int(sites[k % len(sites)]))
        if best[1] is None:
            return
        _, a, b = best
        d = q[b] - q[a]
        q[a], q[b] = q[b], q[a]
        lab[a], lab[b] = lab[b], lab[a]
        v += d * (m[:, a] - m[:, b])
