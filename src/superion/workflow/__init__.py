"""Workflow configuration: the sweep config validated once at the edge (the JSON schema the
Snakefile's ``validate`` also uses) and its expansion into systems, runs and step counts
(:mod:`.config`). Paths come from :mod:`superion.layout`."""
