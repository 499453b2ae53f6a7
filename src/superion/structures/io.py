"""The one structure reader of every command, and the writer of prepared/relaxed structures.

:func:`read_atoms` is what ``prepare``, ``relax``, ``check-geometry``, ``build`` and ``md`` read
with: one ordered, periodic structure (last frame), ``calc`` None and constraints cleared.
:func:`read_pymatgen` is the same reader for inputs that may be disordered (``prepare``,
``supercell``, the workflow's cost estimate). Readers turn every failure (missing file,
malformed CIF, empty cell, overlapping atoms) into one-line :class:`SuperionError` messages.
Non-finite or garbage coordinates (:func:`check_coordinates`) and a CIF whose atoms do not add
up to its own formula (:func:`check_cif_composition`: lines lost) are refused too.
CIF (and other pymatgen formats) are read with pymatgen so that partial occupancies survive;
extended XYZ / ASE trajectories are read with ASE so that stored cluster labels
(``arrays["cluster_id"]``) survive. Writers go through :mod:`superion.atomic`
(write-then-rename: no partial file on failure).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superion.errors import SuperionError

if TYPE_CHECKING:  # pragma: no cover
    from ase import Atoms
    from pymatgen.core import Structure

# Extensions read with ASE (they carry per-atom arrays such as cluster_id).
ASE_FORMATS = {".extxyz": "extxyz", ".xyz": "extxyz", ".traj": "traj"}
# Output formats by extension.
WRITE_FORMATS = {".extxyz": "extxyz", ".xyz": "extxyz", ".cif": "cif", ".vasp": "vasp", ".traj": "traj"}
# Two atoms closer than this (Å) in an ordered structure are an input error (duplicate sites,
# wrong units or a disordered model read as ordered). Shortest real bond here: B–H 1.2 Å, H–H in BH4 ~2 Å.
MIN_DISTANCE_A = 0.5
# An atom this many cells outside its cell has garbage coordinates (1e6 Å in a 10 Å cell), not a
# periodic image a writer chose.
MAX_CELLS_AWAY = 100.0


def _one_line(text: Any, limit: int = 160) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def check_input_file(path: str | os.PathLike) -> Path:
    """The path as :class:`Path`, or SuperionError if it is missing, a folder or empty."""
    p = Path(path)
    if not p.exists():
        raise SuperionError(f"structure file not found: {p}; check the path")
    if p.is_dir():
        raise SuperionError(f"{p} is a folder, not a structure file; give a CIF/extxyz/POSCAR file")
    if p.stat().st_size == 0:
        raise SuperionError(f"structure file {p} is empty; give a valid CIF/extxyz/POSCAR file")
    return p


def check_output_path(path: str | os.PathLike, allowed: tuple[str, ...] | None = None) -> Path:
    """Validate an output path's extension, and that it can be written, before any work is done."""
    p = Path(path)
    fmt = WRITE_FORMATS.get(p.suffix.lower())
    if fmt is None or (allowed and p.suffix.lower() not in allowed):
        ok = ", ".join(allowed or tuple(WRITE_FORMATS))
        raise SuperionError(f"cannot write structure format of {p} (extension {p.suffix or 'none'}); use one of {ok}")
    if p.is_dir():
        raise SuperionError(f"output {p} is a folder; give a file name such as {p / 'structure.extxyz'}")
    from superion.paths import check_writable

    return check_writable(p)



def check_coordinates(positions_A, cell_A, symbols, source: Any = "structure") -> None:
    """Reject a cell or positions (Å) that are not finite, and atoms more than
    ``MAX_CELLS_AWAY`` cells outside the cell (garbage coordinates), naming the atom."""
    import numpy as np

    cell = np.asarray(cell_A, dtype=float)
    pos = np.asarray(positions_A, dtype=float)
    if not np.isfinite(cell).all():
        raise SuperionError(f"{source}: the cell is not finite (NaN/inf); fix the lattice")
    bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
    if bad.size:
        i = int(bad[0])
        raise SuperionError(f"{source}: atom {i} ({symbols[i]}) has a non-finite position {pos[i].tolist()}; "
                            "fix its coordinates (the file is damaged)")
    if abs(np.linalg.det(cell)) > 1e-3 and len(pos):
        frac = np.abs(np.linalg.solve(cell.T, pos.T).T)
        i = int(np.argmax(frac.max(axis=1)))
        if frac[i].max() > MAX_CELLS_AWAY:
            raise SuperionError(f"{source}: atom {i} ({symbols[i]}) lies {frac[i].max():.3g} cells away from the "
                                f"cell (position {pos[i].tolist()} A); its coordinates are garbage: fix them")


def check_cif_composition(path: Path, structure: "Structure") -> None:
    """Reject a CIF whose atoms do not add up to its own ``_chemical_formula_sum`` (pymatgen's
    check): elements missing from the atoms read, or other ratios, mean lost atom lines (a file
    cut short at a line boundary parses fine otherwise)."""
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reason = CifParser(str(path)).check(structure)
        except Exception:  # the structure was read already; a check that cannot run is no verdict
            return
    # "Missing elements X from CIF-reported composition" (a sloppy formula) is no sign of lost atoms
    if reason and ("from PMG structure" in reason or reason.startswith("Incorrect stoichiometry")):
        raise SuperionError(
            f"{path}: the atoms read ({structure.composition.formula.replace(' ', '')}) do not match the file's own "
            f"chemical formula ({_one_line(reason)}); atom lines are missing (a file cut short?): check the file"
        )


def read_pymatgen(path: str | os.PathLike, *, check_overlap: bool = True) -> "Structure":
    """Read any pymatgen-readable structure (CIF with partial occupancies, POSCAR, ...).

    Extended XYZ is read through ASE and converted. Raises SuperionError on any failure;
    fully occupied atoms closer than ``MIN_DISTANCE_A`` are one unless ``check_overlap`` is False.
    """
    p = check_input_file(path)
    if p.suffix.lower() in ASE_FORMATS:
        from pymatgen.io.ase import AseAtomsAdaptor

        return AseAtomsAdaptor.get_structure(read_atoms(p, check_overlap=check_overlap))
    from pymatgen.core import Structure

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structure = Structure.from_file(str(p))
        except Exception as exc:  # pymatgen raises ValueError/KeyError/IndexError/... on bad files
            hint = next((str(w.message) for w in caught if "No structure parsed" in str(w.message)), "")
            detail = _one_line(f"{exc}" + (f" ({hint})" if hint else ""))
            raise SuperionError(f"cannot read a structure from {p}: {detail}; check that it is a valid CIF/POSCAR file") from None
    if p.suffix.lower() in (".cif", ".mcif"):
        check_cif_composition(p, structure)
    validate_structure(structure, p, check_overlap=check_overlap)
    return structure


def validate_structure(structure: "Structure", source: Any = "structure", *, check_overlap: bool = True) -> None:
    """Reject empty cells, zero volume and (unless ``check_overlap`` is False) overlapping fully-occupied atoms."""
    import numpy as np

    if len(structure) == 0:
        raise SuperionError(f"{source} contains no atoms; check the file")
    check_coordinates(structure.cart_coords, structure.lattice.matrix, [s.species_string for s in structure], source)
    if structure.volume < 1e-3:
        raise SuperionError(f"{source} has a degenerate cell (volume {structure.volume:.3g} Å^3); check the lattice")
    ordered = [i for i, site in enumerate(structure) if site.is_ordered]
    if check_overlap and len(ordered) >= 2:
        sub = structure.copy()
        sub.remove_sites([i for i in range(len(structure)) if i not in set(ordered)])
        i, j, _, d = sub.get_neighbor_list(MIN_DISTANCE_A)
        keep = i != j
        if keep.any():
            a, b, dist = int(i[keep][0]), int(j[keep][0]), float(d[keep][0])
            raise SuperionError(
                f"{source}: atoms {sub[a].specie} and {sub[b].specie} are only {dist:.3f} Å apart "
                f"(< {MIN_DISTANCE_A} Å); remove duplicate sites or mark split sites with partial occupancies"
            )


def read_atoms(path: str | os.PathLike, *, check_overlap: bool = True) -> "Atoms":
    """Read one ordered periodic structure as ASE ``Atoms``: the last frame, ``calc`` None,
    no constraints; extxyz keeps its cluster labels (``arrays["cluster_id"]``).

    CIFs are read with pymatgen; partial occupancies are an error naming ``superion prepare``.
    Atoms closer than ``MIN_DISTANCE_A`` are an error unless ``check_overlap`` is False (for
    ``check-geometry``, which reports them instead).
    """
    p = check_input_file(path)
    suffix = p.suffix.lower()
    if suffix in ASE_FORMATS:
        from ase.io import read

        try:
            atoms = read(str(p), index=-1, format=ASE_FORMATS[suffix])
        except Exception as exc:
            raise SuperionError(f"cannot read a structure from {p}: {_one_line(exc)}; check the file") from None
        if len(atoms) == 0:
            raise SuperionError(f"{p} contains no atoms; check the file")
        check_coordinates(atoms.positions, atoms.cell.array, atoms.get_chemical_symbols(), p)
        if not atoms.pbc.all() or abs(atoms.cell.volume) < 1e-3:
            raise SuperionError(f"{p} has no periodic cell; give a crystal structure with a lattice")
        occupancy = atoms.info.get("occupancy")
        if isinstance(occupancy, dict) and any(
            float(v) < 0.999 for site in occupancy.values() if isinstance(site, dict) for v in site.values()
        ):
            raise SuperionError(f"{p} has partially occupied sites; order it first with 'superion prepare'")
        if check_overlap:
            validate_atoms(atoms, p)
        atoms.calc = None  # stored energies/forces are not results of the caller's potential
        atoms.set_constraint()
        return atoms
    structure = read_pymatgen(p, check_overlap=check_overlap)
    if not structure.is_ordered:
        raise SuperionError(
            f"{p} has partial occupancies ({structure.composition.reduced_formula} disordered); "
            "order it first with 'superion prepare'"
        )
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(structure)
    # pymatgen attaches occupancy/spacegroup info that extxyz would carry around needlessly.
    for key in list(atoms.info):
        atoms.info.pop(key)
    for key in [k for k in atoms.arrays if k not in ("numbers", "positions")]:
        atoms.arrays.pop(key)
    atoms.calc = None
    atoms.set_constraint()
    return atoms


def validate_atoms(atoms: "Atoms", source: Any = "structure") -> None:
    """Reject overlapping atoms (< ``MIN_DISTANCE_A``) in an ordered ASE structure."""
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, MIN_DISTANCE_A)
    if len(i):
        s = atoms.get_chemical_symbols()
        raise SuperionError(
            f"{source}: atoms {i[0]} ({s[i[0]]}) and {j[0]} ({s[j[0]]}) are only {d[0]:.3f} Å apart "
            f"(< {MIN_DISTANCE_A} Å); remove duplicate atoms"
        )


def to_atoms(structure: "Structure") -> "Atoms":
    """Ordered pymatgen Structure → plain ASE Atoms (no extra info/arrays)."""
    from pymatgen.io.ase import AseAtomsAdaptor

    if not structure.is_ordered:
        raise SuperionError("structure still has partial occupancies; order it first ('superion prepare')")
    s = structure.copy()
    s.remove_oxidation_states()
    atoms = AseAtomsAdaptor.get_atoms(s)
    atoms.info.clear()
    for key in [k for k in atoms.arrays if k not in ("numbers", "positions")]:
        atoms.arrays.pop(key)
    return atoms


def json_path_for(out: str | os.PathLike) -> Path:
    """The JSON report written beside a structure file: ``OUT.extxyz`` → ``OUT.json``."""
    return Path(out).with_suffix(".json")


def write_structure(atoms: "Atoms", path: str | os.PathLike) -> Path:
    """Atomically write ``atoms`` in the format given by the extension (extxyz keeps labels)."""
    from ase.io import write

    from superion.atomic import atomic_path

    p = check_output_path(path)
    fmt = WRITE_FORMATS[p.suffix.lower()]
    with atomic_path(p) as tmp:
        if fmt == "cif":
            # pymatgen's CIF writer: standard tags that pymatgen/VESTA/ASE all read back.
            from pymatgen.io.ase import AseAtomsAdaptor
            from pymatgen.io.cif import CifWriter

            plain = atoms.copy()
            plain.calc = None
            for key in [k for k in plain.arrays if k not in ("numbers", "positions")]:
                plain.arrays.pop(key)
            plain.info.clear()
            CifWriter(AseAtomsAdaptor.get_structure(plain)).write_file(str(tmp))
        elif fmt == "extxyz":
            out = atoms.copy()
            out.calc = None  # do not store stale energies/forces as if they were results
            write(str(tmp), out, format="extxyz")
        else:
            write(str(tmp), atoms, format=fmt)
    return p


def write_with_report(atoms: "Atoms", path: str | os.PathLike, report: dict) -> tuple[Path, Path]:
    """Write the structure and its JSON report beside it (report first, so a structure file
    on disk always has its report)."""
    from superion.atomic import write_json

    p = check_output_path(path)
    jp = json_path_for(p)
    if jp == p:
        raise SuperionError(f"output {p} would be overwritten by its JSON report; use a .extxyz or .cif name")
    write_json(jp, report)
    try:
        write_structure(atoms, p)
    except BaseException:
        jp.unlink(missing_ok=True)
        raise
    return p, jp
