"""The prepare stage: input structure → ordered model → supercell → cluster labels (+ report).

:func:`prepare_structure` does the work in memory and returns the labelled supercell with the
JSON report; :func:`prepare_file` is ``superion prepare``: it checks the output name first,
prepares, and writes ``OUT.extxyz`` with ``OUT.json`` beside it. Lengths Å, volumes Å³.

Messages for the user (rounded occupancies, charge imbalance, unknown cluster types) go to
``warn`` as they arise (default: :func:`warnings.warn`) and are also listed in the report's
``warnings``.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from superion.errors import SuperionError
from superion.structures.ordering import DEFAULT_N_CANDIDATES, DEFAULT_N_SAMPLES
from superion.structures.supercell import DEFAULT_MIN_WIDTH_A

if TYPE_CHECKING:  # pragma: no cover
    from ase import Atoms

PREPARED_SUFFIXES = (".extxyz", ".xyz")


@dataclass
class Prepared:
    """Outcome of the prepare stage: the labelled supercell and its JSON report."""

    atoms: "Atoms"
    report: dict


def _python_warning(msg: str) -> None:
    warnings.warn(msg, UserWarning, stacklevel=3)


def prepare_structure(
    path: str | os.PathLike,
    *,
    supercell=None,
    min_width_A: float = DEFAULT_MIN_WIDTH_A,
    seed: int = 0,
    n_candidates: int = DEFAULT_N_CANDIDATES,
    n_samples: int = DEFAULT_N_SAMPLES,
    order_in_supercell: bool = False,
    oxidation_states: str | dict[str, float] | None = None,
    potential: Any = None,
    rerank: int = 0,
    device: str = "auto",
    threads: int | None = None,
    models_dir: str | os.PathLike | None = None,
    mobile_species: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> Prepared:
    """Order ``path`` (partial occupancies by Ewald ranking, optionally re-ranked with ``potential``),
    build the supercell and label the clusters; nothing is written.

    ``supercell`` (three integers) wins over ``min_width_A`` (smallest diagonal supercell with all
    perpendicular widths ≥ it, Å). ``potential``: a model name or a loaded
    :class:`~superion.potential.LoadedPotential`; it re-ranks the ``rerank`` best Ewald candidates
    after a short relaxation, and its record goes into the report. ``oxidation_states``: a dict or
    ``"Li=1,S=-2"``. ``mobile_species``: an element the structure must contain (the ion the study
    is about; a file that lost it is refused). SuperionError for bad settings (before anything
    is read or loaded), for such a structure, and when the cluster counts change (ordering or tiling broke or fused molecular ions). The report's
    ``output`` is None here (set by :func:`prepare_file`).
    """
    from superion import __version__
    from superion.provenance import file_record
    from superion.structures.clusters import KNOWN_CLUSTERS, label_clusters
    from superion.structures.io import read_pymatgen, to_atoms
    from superion.structures.ordering import order_structure, parse_oxidation_states
    from superion.potential import load_checked
    from superion.structures.supercell import check_min_width, choose_supercell, make_supercell

    warn = warn or _python_warning
    # cheap checks first: nothing is loaded for bad settings
    if supercell is None:
        check_min_width(min_width_A)
    if n_candidates < 1:
        raise SuperionError(f"--n-candidates must be >= 1, got {n_candidates}")
    if n_samples < 1:
        raise SuperionError(f"--n-samples must be >= 1, got {n_samples}")
    if rerank < 0:
        raise SuperionError(f"--rerank must be >= 0, got {rerank}")
    if rerank and not potential:
        raise SuperionError("--rerank needs --potential NAME (the model that re-ranks the candidates)")
    oxi = oxidation_states if isinstance(oxidation_states, dict) else parse_oxidation_states(oxidation_states)

    structure = read_pymatgen(path)
    symbols = sorted({el.symbol for el in structure.composition.elements})
    if mobile_species is not None and mobile_species not in symbols:
        raise SuperionError(
            f"{path} contains no {mobile_species} (elements: {', '.join(symbols)}), the mobile species; "
            "check the file (cut short? wrong structure?) or --mobile-species"
        )
    lp = load_checked(potential, device=device, threads=threads, symbols=symbols, models_dir=models_dir) if potential else None

    n_cell_sites = len(structure)
    choice = choose_supercell(structure.lattice.matrix, supercell=supercell, min_width_A=min_width_A)

    # clusters can only be made of fully occupied sites (ordering refuses anything else), so
    # the expected count is the cell's count times the number of cells
    ordered_part = structure.copy()
    ordered_part.remove_sites([i for i, s in enumerate(structure) if not s.is_ordered])
    expected: dict[str, int] = {}
    if len(ordered_part):
        expected = dict(Counter(label_clusters(to_atoms(ordered_part)).types))
    expected = {t: n * choice.n_cells for t, n in expected.items()}

    to_order = structure
    if order_in_supercell and not structure.is_ordered:
        to_order = structure.copy()
        to_order.make_supercell(list(choice.multiplier))
    # the ordering's own warnings are passed on; those of the libraries it calls are not news to the user
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = order_structure(
            to_order, seed=seed, n_candidates=n_candidates, n_samples=n_samples, oxidation_states=oxi,
            calculator=lp.calculator() if (lp and rerank) else None, rerank=rerank,
        )
    for w in caught:
        if issubclass(w.category, UserWarning) and str(w.message) in result.record.get("warnings", []):
            warn(str(w.message))

    atoms = to_atoms(result.structure)
    if to_order is structure:
        atoms = make_supercell(atoms, choice.multiplier)
    labels = label_clusters(atoms)
    labels.attach(atoms)
    got = labels.counts()
    if got != expected:
        raise SuperionError(
            f"cluster counts changed while preparing: expected {expected} (cell x {choice.n_cells}), found {got}; "
            "the ordering or supercell broke or fused molecular ions — check the input structure"
        )
    known = set(KNOWN_CLUSTERS.values())
    unknown = sorted({t for t in got if t not in known})
    if unknown:
        warn(f"clusters of unknown type {', '.join(unknown)} (broken or fused molecular ions?); check the structure")

    counts = Counter(atoms.get_chemical_symbols())
    sc = choice.to_dict()
    sc["n_atoms_cell"] = len(result.structure) if to_order is structure else len(atoms) // choice.n_cells
    sc["n_atoms"] = len(atoms)
    report = {
        "superion_version": __version__,
        "command": "prepare",
        "input": {**file_record(path), "n_sites": n_cell_sites,
                  "formula": structure.composition.formula.replace(" ", ""), "ordered": structure.is_ordered},
        "output": None,
        "formula": "".join(f"{el}{counts[el]}" for el in sorted(counts)),
        "reduced_formula": result.structure.composition.reduced_formula,
        "n_atoms": len(atoms),
        "species_counts": dict(sorted(counts.items())),
        "multiplier": list(choice.multiplier),
        "supercell": sc,
        "perpendicular_widths_A": sc["perpendicular_widths_supercell_A"],
        "lattice_A": atoms.cell[:].round(8).tolist(),
        "volume_A3": float(atoms.get_volume()),
        "cluster_counts": got,
        "ordering": dict(result.record, ordered_in="supercell" if to_order is not structure else "cell"),
        "potential": lp.record() if lp else None,
        "seed": seed,
        "warnings": list(result.record.get("warnings", [])) + [f"unknown cluster type {t}" for t in unknown],
    }
    return Prepared(atoms, report)


def prepare_file(path: str | os.PathLike, out: str | os.PathLike, **settings) -> Prepared:
    """``superion prepare``: :func:`prepare_structure` (``settings`` are its keywords), then write
    ``out`` (.extxyz, with cluster labels) and its JSON report beside it (``OUT.json``).

    The output name is checked before anything is read.
    """
    from superion.structures.io import check_output_path, write_with_report

    out_path = check_output_path(out, allowed=PREPARED_SUFFIXES)
    prepared = prepare_structure(path, **settings)
    prepared.report["output"] = str(out_path)
    write_with_report(prepared.atoms, out_path, prepared.report)
    return prepared
