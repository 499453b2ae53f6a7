"""Physical constants and unit conversions: the one table of the project (SI, CODATA 2018).

ASE's own unit system (``ase.units.fs``, ``ase.units.kB``, ``ase.units.bar``) is used only where
numbers enter or leave ASE; everything superion stores is in the units named by its keys
(``_A``, ``_fs``, ``_ps``, ``_K``, ``_eV``, ``_cm2_s``, ``_mS_cm``, ``_bar``).
"""

from __future__ import annotations

K_B_EV_K = 8.617333262e-5  # Boltzmann constant, eV/K
K_B_J_K = 1.380649e-23  # Boltzmann constant, J/K
E_CHARGE_C = 1.602176634e-19  # elementary charge, C

A2_PS_TO_CM2_S = 1e-4  # 1 Å²/ps = 1e-4 cm²/s (so 1 Å²/fs = 0.1 cm²/s)
A3_TO_M3 = 1e-30
CM2_TO_M2 = 1e-4
S_M_TO_MS_CM = 10.0  # 1 S/m = 10 mS/cm
FS_PER_PS = 1000.0
PS_TO_S = 1e-12  # 1 ps in s
EV_A3_TO_GPA = 160.21766208  # 1 eV/Å³ in GPa
COULOMB_EV_A = 14.399645  # e²/(4π ε0) in eV·Å
