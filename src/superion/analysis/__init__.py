"""Analysis stage: pure functions over trajectory arrays (Å, fs/ps, K), fed by the readers of
:mod:`superion.trajectory` – unwrap and drift removal (:mod:`.unwrap`, Numba :mod:`.kernels`),
MSD (:mod:`.msd`, :mod:`.correlation`), diffusivity/conductivity (:mod:`.diffusion`), Arrhenius
fits (:mod:`.arrhenius`), anion rotation (:mod:`.rotation`), ion density (:mod:`.density`); each
command's result files are written by :mod:`.outputs`."""
