"""The one reader of the JSON, CSV and NPZ files the project reads back (the write side is
:mod:`superion.atomic`).

Every decode failure — missing file, truncated or garbled bytes, wrong top-level type, a CSV
without its columns or with short rows, an NPZ that is not a zip or lacks an array — becomes
one :class:`SuperionError` line naming the file and the fix the caller passes (``fix``: what the
user should do, e.g. "delete the run directory and rerun"). No library traceback reaches the user.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from superion.errors import SuperionError


def _fail(path, what: str, fix: str) -> SuperionError:
    return SuperionError(f"{path} {what}; {fix}")


def _short(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:160]


def read_json(path: str | os.PathLike, *, fix: str, kind: type | None = dict) -> Any:
    """Parsed JSON of ``path`` (a ``kind`` instance, None: any type); SuperionError otherwise."""
    p = Path(path)
    try:
        data = json.loads(p.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise _fail(p, "not found", fix) from None
    except IsADirectoryError:
        raise _fail(p, "is a folder, not a JSON file", fix) from None
    except OSError as exc:
        raise _fail(p, f"cannot be read ({exc.strerror})", fix) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # truncated, garbled, not JSON
        raise _fail(p, f"is damaged or not valid JSON ({_short(exc)})", fix) from None
    if kind is not None and not isinstance(data, kind):
        raise _fail(p, f"holds a JSON {type(data).__name__}, not a {kind.__name__}", fix)
    return data


def read_json_or(path: str | os.PathLike | None, default: Any) -> Any:
    """:func:`read_json` for optional inputs (report pages, table annotations): ``default`` when
    the file is absent, unreadable or not a JSON object, instead of an error."""
    if not path:
        return default
    try:
        return read_json(path, fix="")
    except SuperionError:
        return default


def read_csv(path: str | os.PathLike, *, fix: str, columns: Iterable[str] = ()) -> list[dict[str, str]]:
    """Rows of a CSV file with a header (values as str); every row must have every column and
    the header every name in ``columns``."""
    import csv

    p = Path(path)
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = reader.fieldnames or []
    except FileNotFoundError:
        raise _fail(p, "not found", fix) from None
    except OSError as exc:
        raise _fail(p, f"cannot be read ({exc.strerror})", fix) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise _fail(p, f"is damaged or not CSV ({_short(exc)})", fix) from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise _fail(p, f"lacks the column(s) {', '.join(missing)}", fix)
    for i, row in enumerate(rows):
        if None in row or any(v is None for v in row.values()):  # too many / too few fields
            raise _fail(p, f"row {i + 2} has {len([v for v in row.values() if v is not None])} fields, "
                           f"not {len(header)} (truncated or damaged)", fix)
    return rows


def read_npz(path: str | os.PathLike, *, fix: str, keys: Iterable[str] = ()) -> dict[str, Any]:
    """All arrays of an ``.npz`` (loaded, no pickles) as a dict; ``keys`` must be among them."""
    import zipfile
    import zlib

    import numpy as np

    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(4)
    except FileNotFoundError:
        raise _fail(p, "not found", fix) from None
    except OSError as exc:
        raise _fail(p, f"cannot be read ({exc.strerror})", fix) from None
    if head != b"PK\x03\x04":  # np.load would take anything else for a pickle
        raise _fail(p, "is damaged or not an .npz file (empty or not a zip archive)", fix)
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise _fail(p, "not found", fix) from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        # empty, truncated, bit-flipped (zip CRC), or not an npz at all
        raise _fail(p, f"is damaged or not an .npz file ({_short(exc)})", fix) from None
    missing = [k for k in keys if k not in data]
    if missing:
        raise _fail(p, f"lacks the array(s) {', '.join(missing)}", fix)
    return data
