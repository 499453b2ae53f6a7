"""Build ordered starting structures from rigid cluster templates; screen candidates.

Pipeline (each step is a plain function so users can recombine them):

1. :func:`expand_clusters` (:mod:`.crystal`) — place template clusters at fractional centres
   with a rotation, and replicate them with the space-group operations (exact: every atom of
   the placed cluster is mapped by the operation, so mirror/rotation site symmetry is kept).
2. :func:`tetrahedral_voids` (:mod:`.sites`) — periodic Delaunay tetrahedralization of the
   anion centres; each tetrahedron gives a cation site at its centroid, labelled by the anion
   kinds at its corners (e.g. ``"BH4:1,B12H12:3"``).
3. :func:`ewald_pair_matrix` (:mod:`.ewald`) + :func:`select_sites_mc` (:mod:`.sites`) —
   choose which cation sites to fill by Monte Carlo on a point-charge Ewald energy with a
   minimum cation–cation distance.
4. :func:`soft_sphere_score` (:mod:`.contacts`) — a cheap overlap penalty (eV-like units) for ranking.
5. :func:`build_candidates` (:mod:`.recipe`) — every frame × cation arrangement of a YAML recipe.
6. Potential energies/relaxations are done with :mod:`superion.structures.relax`
   (:func:`screen` in :mod:`.screen` runs the ladder single point → fixed-cell relax → full
   relax; :func:`run_recipe` writes the chosen model).

Every candidate is independent and described by a JSON-able dict, so a search can be split
over processes; all randomness comes from explicit seeds. This package namespace re-exports
the public functions of its modules.
"""

from superion.structures.build.contacts import relax_ions_soft, soft_sphere_score
from superion.structures.build.crystal import (
    ClusterPlacement,
    Frame,
    expand_clusters,
    expand_sites,
    make_atoms,
    min_image_distances,
)
from superion.structures.build.ewald import COULOMB_EV_A, ewald_energy_eV, ewald_pair_matrix
from superion.structures.build.recipe import build_candidates, load_recipe, make_frames, orientation_choices
from superion.structures.build.screen import align_to_reference, run_recipe, screen, write_cif
from superion.structures.build.sites import (
    CATION_CHARGE,
    Void,
    cation_configurations,
    cation_sites,
    orbit_combinations,
    select_sites_mc,
    symmetrize_voids,
    tetrahedral_voids,
    void_orbits,
)
from superion.structures.lattice import lattice_from

__all__ = [
    "CATION_CHARGE", "COULOMB_EV_A", "ClusterPlacement", "Frame", "Void", "align_to_reference", "build_candidates",
    "cation_configurations", "cation_sites", "ewald_energy_eV", "ewald_pair_matrix", "expand_clusters",
    "expand_sites", "lattice_from", "load_recipe", "make_atoms", "make_frames", "min_image_distances",
    "orbit_combinations", "orientation_choices", "relax_ions_soft", "run_recipe", "screen", "select_sites_mc",
    "soft_sphere_score", "symmetrize_voids", "tetrahedral_voids", "void_orbits", "write_cif",
]
