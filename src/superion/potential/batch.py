"""Energies, forces and stresses of several structures from one batched forward of a matgl Potential.

:class:`BatchEvaluator` builds each structure's graph exactly as matgl's ``PESCalculator`` does
(``Atoms2Graph``: pymatgen neighbour search on the CPU), joins them into one PyG ``Batch`` and
calls the ``Potential`` once. matgl 4.1.2 gives per-graph energies, per-atom forces and
per-graph stresses for a batch: the strain that stress is differentiated against has one 3x3
block per graph, and each graph's energy depends only on its own block. Results have the keys,
units and dtypes of ``PESCalculator(stress_unit="eV/A3", use_voigt=True)``: energy eV (Python
float), forces (N, 3) float32 eV/Å, stress (6,) eV/Å³ in ASE sign.

``batched_graph=False`` evaluates the structures one graph at a time instead (the same calls as
``PESCalculator``): bitwise the single runs, for the CPU, where one batched graph costs as
much as R single ones (bench/RESULTS.md) and its float32 rounding differences make a replica's
chaotic trajectory leave the single run's within a few hundred steps.

Equality with one graph at a time (CPU, one thread, o-NBH; trajectories: bench/RESULTS.md): a
structure alone is evaluated through the single-graph path, so a batch of one *is* the single
evaluation. In a larger batch forces and stresses are bitwise equal for most structures and
within ~1 float32 ulp (≤ 1e-6 eV/Å) for the others, because torch's CPU kernels evaluate the
last few elements of a tensor with scalar code and the rest with SIMD code (e.g. ``pow`` in the
three-body cutoff), so the same bond may be rounded differently depending on where it sits in
the batch; energies differ by ~1 ulp of the total (the single graph sums atom energies with
``sum``, a batch with ``index_add``). On CUDA nothing is bitwise (atomic scatter adds).
"""

from __future__ import annotations

from typing import Sequence


class BatchEvaluator:
    """``evaluator(list of ase.Atoms)`` -> one result dict (or the exception it raised) per structure.

    A structure whose graph cannot be built fails alone. If the batched forward itself raises
    (e.g. out of GPU memory, or one structure the model cannot handle), each structure is
    evaluated alone so that only the failing ones get the exception.
    """

    def __init__(self, potential, *, batched_graph: bool = True) -> None:
        from ase import units
        from matgl.ext.ase import Atoms2Graph

        self.potential = potential
        self.batched_graph = batched_graph
        self.to_eV_A3 = units.GPa / (units.eV / units.Angstrom**3)  # matgl's stress is in GPa
        self.atoms2graph = Atoms2Graph(potential.model.element_types, potential.model.cutoff)
        self.fallbacks = 0  # batched forwards that raised, so each structure was evaluated alone
        self.fallback_error: str | None = None  # the first such error, for the batch's log

    def __call__(self, structures: Sequence) -> list:
        graphs: list = [None] * len(structures)
        out: list = [None] * len(structures)
        for k, atoms in enumerate(structures):
            try:
                graphs[k] = self.atoms2graph.get_graph(atoms)
            except Exception as exc:  # this structure fails alone
                out[k] = exc
        todo = [k for k in range(len(structures)) if out[k] is None]
        if len(todo) == 1 or not self.batched_graph:
            for k in todo:
                out[k] = self._alone(graphs[k])
        elif todo:
            try:
                for k, res in zip(todo, self._batched([graphs[k] for k in todo])):
                    out[k] = res
            except Exception as exc:  # counted, so a batch that never batches does not go unnoticed
                self.fallbacks += 1
                self.fallback_error = self.fallback_error or f"{type(exc).__name__}: {exc}"
                for k in todo:
                    out[k] = self._alone(graphs[k])
        return out

    def _alone(self, graph) -> dict | Exception:
        """One graph through the same calls as ``PESCalculator.calculate``."""
        g, lattice, state_attr = graph
        try:
            energy, forces, stress = self.potential(g, lattice, state_attr)[:3]
        except Exception as exc:
            return exc
        stress = stress[0] if stress.dim() == 3 else stress
        return self._result(energy.detach().cpu().numpy().item(), forces.detach().cpu().numpy(),
                            stress.detach().cpu().numpy())

    def _batched(self, graphs: list) -> list[dict]:
        import numpy as np
        import torch
        from torch_geometric.data import Batch

        batch = Batch.from_data_list([g for g, _, _ in graphs])
        lattice = torch.cat([lat.reshape(1, 3, 3) for _, lat, _ in graphs])
        # state: numpy from the pymatgen neighbour list, a tensor (maybe on the GPU) from matgl's Warp one
        state = torch.stack([torch.as_tensor(s, device=lattice.device) for _, _, s in graphs])
        energy, forces, stress = self.potential(batch, lattice, state)[:3]
        energy = energy.detach().cpu().numpy().reshape(-1)
        forces = forces.detach().cpu().numpy()
        stress = stress.detach().cpu().numpy().reshape(len(graphs), 3, 3)
        out, start = [], 0
        for k, (g, _, _) in enumerate(graphs):
            n = int(g.num_nodes)
            out.append(self._result(energy[k].item(), np.array(forces[start:start + n]), stress[k]))
            start += n
        return out

    def _result(self, energy: float, forces, stress_3x3) -> dict:
        from ase.stress import full_3x3_to_voigt_6_stress

        return {"energy": energy, "free_energy": energy, "forces": forces,
                "stress": full_3x3_to_voigt_6_stress(stress_3x3) * self.to_eV_A3}
