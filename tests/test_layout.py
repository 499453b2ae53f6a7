"""The package layout: stage packages import only earlier stages (no upward or circular imports),
and the run-directory / analysis file names live in superion.layout alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "superion"
# Dependency order (docs/architecture.md): a package may import the ones before it.
ORDER = ["potential", "structures", "trajectory", "md", "analysis", "workflow", "report", "cli"]
HELPERS = {"layout", "units", "provenance", "atomic", "errors", "paths"}
IMPORT = re.compile(r"^\s*(?:from|import) superion\.([a-z_]+)", re.M)


def _package_files(pkg: str):
    return sorted((SRC / pkg).rglob("*.py"))


@pytest.mark.parametrize("pkg", ORDER)
def test_stage_packages_import_only_earlier_stages(pkg):
    allowed = set(ORDER[: ORDER.index(pkg) + 1]) | HELPERS
    bad = []
    for f in _package_files(pkg):
        for mod in IMPORT.findall(f.read_text()):
            if mod in ORDER and mod not in allowed:
                bad.append(f"{f.relative_to(SRC)} imports superion.{mod}")
    assert not bad, bad


def test_helpers_import_no_stage():
    for name in HELPERS:
        text = (SRC / f"{name}.py").read_text()
        assert not [m for m in IMPORT.findall(text) if m in ORDER], name


def test_file_names_are_spelled_only_in_layout():
    names = ["metadata.json", "thermo.csv", "trajectory.h5", "checkpoint.npz", "complete.json",
             "diffusion.json", "diffusion.npz", "rotation.json", "rotation.npz", "density.cube"]
    offenders = []
    for f in SRC.rglob("*.py"):
        if f.name == "layout.py":
            continue
        for line in f.read_text().splitlines():
            code = line.split("#")[0]
            for n in names:
                if f'"{n}"' in code or f"'{n}'" in code:
                    offenders.append(f"{f.relative_to(SRC)}: {n}")
    rules = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    for f in list(rules.glob("*.smk")) + [rules.parents[1] / "Snakefile"]:
        for line in f.read_text().splitlines():
            code = line.split("#")[0]
            offenders += [f"{f.name}: {n}" for n in names if n in code]
    assert not offenders, offenders
