"""Structures stage: the one structure reader (:mod:`.io`), ordering of partial occupancies
(:mod:`.ordering`), supercells (:mod:`.supercell`), cluster labels (:mod:`.clusters`), relaxation
(:mod:`.relax`), the prepare stage (:mod:`.prepare`), symmetry and lattice descriptions,
geometry checks, and the template-based model builder (:mod:`.build`)."""
