"""Relax structures with identical settings and compare energies per atom (run by hand).

    SUPERION_MODELS=../shared/models OMP_NUM_THREADS=1 .venv/bin/python structures/reference_energies.py

Every structure below is relaxed with superion.structures.relax.relax_structure (FIRE + FrechetCellFilter):
first fmax 0.05 eV/Å (max 400 steps), then fmax 0.02 eV/Å (max 1000 steps), with
M3GNet-r2SCAN-NaBH. Writes structures/reference_energies.json: E per atom (eV), lattice, and the
o-NBH formation energy from Na2B12H12 + NaBH4, ΔE = E(o-NBH)/atom − (26 E(Na2B12H12)/atom +
6 E(NaBH4)/atom)/32 in meV/atom (Na3(BH4)(B12H12) = Na2B12H12 + NaBH4; 32 = 26 + 6 atoms).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "structures" / "approximants"

ENTRIES = {
    # name: (path, kind, reference a, b, c)
    "oNBH_built": (HERE / "oNBH_Na3BH4B12H12_Cmc21.cif", "oNBH", (8.0083, 21.881, 7.7672)),
    "oNBH_shared_approximant": (SHARED / "oNBH_Na3BH4B12H12_Cmc21-approx.cif", "oNBH", (8.0083, 21.881, 7.7672)),
    "Na2B12H12_Pa-3_built": (HERE / "Na2B12H12_Pa-3.cif", "Na2B12H12", None),
    "Na2B12H12_bcc_built": (HERE / "Na2B12H12_bcc.cif", "Na2B12H12", (8.06, 8.06, 8.06)),
    "Na2B12H12_shared_approximant": (SHARED / "Na2B12H12_Pa-3-approx.cif", "Na2B12H12", None),
    "NaBH4_F-43m_built": (HERE / "NaBH4_F-43m.cif", "NaBH4", (6.163, 6.163, 6.163)),
    "NaBH4_P42nmc_built": (HERE / "NaBH4_P42nmc.cif", "NaBH4", (6.126, 6.126, 5.869)),
    "NaBH4_shared_approximant": (SHARED / "NaBH4_P-421c-approx.cif", "NaBH4", (6.126, 6.126, 5.869)),
}


def main() -> int:
    from ase.io import read

    from superion.atomic import write_json
    from superion.structures.lattice import lattice_report
    from superion.potential import get_calculator
    from superion.structures.relax import relax_structure
    from superion.structures.symmetry import space_group_label

    calc = get_calculator("M3GNet-r2SCAN-NaBH", device="cpu", threads=1)
    out: dict = {"settings": "FIRE+FrechetCellFilter fmax 0.05 (400 steps) then fmax 0.02 (1000 steps); M3GNet-r2SCAN-NaBH",
                 "entries": {}}
    only = set(sys.argv[1:])
    target = HERE / "reference_energies.json"
    if only and target.is_file():  # update some entries, keep the others
        import json

        out["entries"] = json.loads(target.read_text()).get("entries", {})
    for name, (path, kind, ref) in ENTRIES.items():
        if (only and name not in only) or not path.is_file():
            continue
        atoms = read(path)
        r1 = relax_structure(atoms, calc, fmax=0.05, max_steps=400, relax_cell=True)
        r2 = relax_structure(r1.atoms, calc, fmax=0.02, max_steps=1000, relax_cell=True)
        if os.environ.get("SUPERION_REF_OUT"):  # keep the relaxed structures for inspection
            r2.atoms.write(Path(os.environ["SUPERION_REF_OUT"]) / f"{name}.extxyz")
        out["entries"][name] = {"file": str(path.name), "kind": kind, "n_atoms": len(atoms),
                                "energy_before_eV_atom": round(r1.energy_before_eV / len(atoms), 6),
                                "energy_eV_atom": round(r2.energy_per_atom_eV, 6), "converged": r2.converged,
                                "steps": r1.steps + r2.steps, "lattice": lattice_report(r2.atoms, ref),
                                "space_group": space_group_label(r2.atoms, 0.1)}
        print(name, out["entries"][name], flush=True)
    e = out["entries"]

    def best(kind: str):
        c = [(v["energy_eV_atom"], k) for k, v in e.items() if v["kind"] == kind]
        return min(c) if c else None

    b12, bh4 = best("Na2B12H12"), best("NaBH4")
    if b12 and bh4:
        mix = (26 * b12[0] + 6 * bh4[0]) / 32
        out["reference_mix"] = {"Na2B12H12": b12[1], "NaBH4": bh4[1], "energy_eV_atom": round(mix, 6)}
        for k, v in e.items():
            if v["kind"] == "oNBH":
                v["delta_vs_Na2B12H12_plus_NaBH4_meV_atom"] = round(1000 * (v["energy_eV_atom"] - mix), 2)
    write_json(target, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
