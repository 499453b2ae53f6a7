"""superion: M3GNet molecular dynamics of superionic conductors, from crystal structure to Arrhenius plot.

The packages are the stages of the pipeline, in order (docs/architecture.md):

1. :mod:`superion.structures` – read, order, supercell, label clusters, relax, build models;
2. :mod:`superion.potential` – find, load and check M3GNet models (matgl legacy fix);
3. :mod:`superion.md` – NPT/NVT MD into resumable run directories;
4. :mod:`superion.trajectory` – the trajectory files MD writes and analysis reads;
5. :mod:`superion.analysis` – MSD, diffusivity, conductivity, Arrhenius, rotation, density;
6. :mod:`superion.report` – tables and figures of a sweep;

plus :mod:`superion.workflow` (the validated sweep config the Snakefile expands) and the
one-owner helpers :mod:`superion.layout` (file names), :mod:`superion.units`,
:mod:`superion.provenance`, :mod:`superion.atomic` (atomic writes), :mod:`superion.errors`.
"""

__version__ = "0.1.0"
