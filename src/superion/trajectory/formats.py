"""What the readers need to know about foreign trajectory formats.

- which ASE format a file is (:func:`ase_format`: ``--format`` wins, else ASE's guess from the
  name and the contents; a name ASE cannot place is an error naming ``--format``);
- type-only LAMMPS dumps (:func:`lammps_dump_columns`, :func:`parse_type_map`): a dump without
  an ``element`` column numbers its atom types, and ASE would read type 3 as Li; the user's
  ``--type-map 1=Li,2=P,3=S`` says what they are;
- VASP MD in ``vasprun.xml`` (:func:`vasprun_md_parameters`): POTIM (fs per ionic step = per
  frame), TEBEG (K) and IBRION (0 = MD);
- formats read through MDAnalysis with a topology (:data:`MDANALYSIS_SUFFIXES`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from superion.errors import SuperionError

# Trajectories read with MDAnalysis; they hold no element names, so a topology file comes with them.
MDANALYSIS_SUFFIXES = {".dcd": "DCD", ".xtc": "XTC", ".trr": "TRR"}
LAMMPS_DUMP_FORMATS = ("lammps-dump-text",)
VASP_XML_FORMAT = "vasp-xml"
# Suffixes ASE does not know, for formats it reads.
SUFFIX_ALIASES = {".exyz": "extxyz"}


def ase_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The ASE format name of ``path``: ``format`` if given (checked against ASE's list), else the
    alias of its suffix, else ASE's guess; SuperionError naming ``--format`` when it cannot tell."""
    from ase.io.formats import UnknownFileTypeError, filetype, get_compression, ioformats

    if format is not None:
        if format not in ioformats or not ioformats[format].can_read:
            raise SuperionError(f"--format {format!r} is not a format ASE reads; use an ASE format name such as "
                                "extxyz, traj, vasp-xdatcar, vasp-xml or lammps-dump-text ('ase info --formats' lists all)")
        return format
    p = Path(path)
    alias = SUFFIX_ALIASES.get(Path(get_compression(str(p))[0]).suffix.lower())
    if alias:
        return alias
    try:
        guess = filetype(str(p), guess=True)
    except (UnknownFileTypeError, OSError, ValueError):
        guess = None
    if guess is None or guess not in ioformats:
        raise SuperionError(
            f"cannot tell the format of {p} from its name or contents; pass --format with an ASE format name "
            "(extxyz, traj, vasp-xdatcar, vasp-xml, lammps-dump-text, ...)"
        )
    return guess


def parse_type_map(text: str | dict | None) -> dict[str, str] | None:
    """``"1=Li,2=P,3=S"`` (or a mapping) → ``{"1": "Li", "2": "P", "3": "S"}`` (type label → element);
    SuperionError for a malformed item, a repeated type or an unknown element."""
    if text is None:
        return None
    from ase.data import chemical_symbols

    items = list(text.items()) if isinstance(text, dict) else [
        tuple(part.split("=", 1)) if "=" in part else (part, "") for part in str(text).split(",") if part.strip()
    ]
    out: dict[str, str] = {}
    for key, value in items:
        key, value = str(key).strip(), str(value).strip()
        if not key or not value:
            raise SuperionError(f"bad --type-map {text!r}; write TYPE=ELEMENT pairs, e.g. --type-map 1=Li,2=P,3=S")
        if value not in chemical_symbols[1:]:
            raise SuperionError(f"--type-map: {value!r} (for type {key}) is not an element symbol")
        if key in out:
            raise SuperionError(f"--type-map names type {key} twice; give each type once")
        out[key] = value
    if not out:
        raise SuperionError("--type-map is empty; write TYPE=ELEMENT pairs, e.g. --type-map 1=Li,2=P,3=S")
    return out


def lammps_dump_columns(path: str | os.PathLike) -> list[str] | None:
    """The column names of the first ``ITEM: ATOMS`` line of a LAMMPS text dump (None if none)."""
    from ase.io.formats import open_with_compression  # .gz/.bz2/.xz as ASE reads them

    with open_with_compression(str(path), "r") as fh:
        for line in fh:
            if line.startswith("ITEM: ATOMS"):
                return line.split()[2:]
    return None


def lammps_specorder(path: str | os.PathLike, type_map: dict[str, str] | None) -> list[str] | None:
    """ASE's ``specorder`` for a LAMMPS dump (element of type t at t − 1), or None when the dump
    names its elements; SuperionError when it numbers its types and no ``type_map`` says what
    they are, or when the map misses a type."""
    cols = lammps_dump_columns(path) or []
    if "element" in cols:
        if type_map:
            raise SuperionError(f"{path} names its elements (an 'element' column); drop --type-map")
        return None
    if "type" not in cols:
        raise SuperionError(f"{path}: a LAMMPS dump needs an 'element' or a 'type' column (found {' '.join(cols)})")
    types = _dump_types(path)
    if not type_map:
        example = ",".join(f"{t}=EL" for t in types[:4])
        raise SuperionError(
            f"{path} is a LAMMPS dump with numeric atom types ({', '.join(map(str, types))}) and no element column; "
            f"say which element each type is with --type-map, e.g. --type-map {example}"
        )
    try:
        numbered = {int(k): v for k, v in type_map.items()}
    except ValueError:
        raise SuperionError(f"--type-map for a LAMMPS dump maps type numbers, got {', '.join(type_map)}") from None
    missing = [t for t in types if t not in numbered]
    if missing:
        raise SuperionError(f"--type-map does not say which element type(s) {', '.join(map(str, missing))} of {path} are")
    return [numbered.get(t, "X") for t in range(1, max(max(numbered), max(types)) + 1)]


def _dump_types(path) -> list[int]:
    """The atom types of the first frame of a LAMMPS text dump, sorted."""
    from ase.io.formats import open_with_compression

    with open_with_compression(str(path), "r") as fh:
        n = None
        for line in fh:
            if line.startswith("ITEM: NUMBER OF ATOMS"):
                n = int(next(fh).split()[0])
            elif line.startswith("ITEM: ATOMS"):
                k = line.split()[2:].index("type")
                return sorted({int(next(fh).split()[k]) for _ in range(n or 0)})
    return []


_XML_PARAM = r'<i\b[^>]*\bname="{name}"[^>]*>\s*([^<\s]+)\s*</i>'


def vasprun_md_parameters(path: str | os.PathLike) -> dict[str, float]:
    """POTIM (fs), TEBEG (K) and IBRION of a ``vasprun.xml`` (those found, from its head)."""
    from ase.io.formats import open_with_compression

    with open_with_compression(str(path), "rb") as fh:
        head = fh.read(4 << 20).decode("utf-8", errors="replace")
    out: dict[str, float] = {}
    for name in ("POTIM", "TEBEG", "IBRION"):
        m = re.search(_XML_PARAM.format(name=name), head)
        if m:
            try:
                out[name] = float(m.group(1))
            except ValueError:
                pass
    return out
