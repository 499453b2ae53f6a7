"""Report stage: ``summary.csv``/``diffusion.csv`` from the per-run and per-group JSON
(:mod:`.tables`) and the figures drawn from those tables (:mod:`.figures`); never from
trajectories, so regenerating a table or figure reruns no MD."""
