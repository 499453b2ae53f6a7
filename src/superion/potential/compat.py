"""matgl >= 3.0 compatibility for checkpoints trained with matgl <= 2.2 (DGL), per model instance.

matgl <= 2.2's M3GNet graph convolution summed node-update messages onto each edge's
*destination* atom; matgl >= 3.0 scatters them onto the *source* atom. Weights load
"strictly" either way, so an old checkpoint evaluated by new code silently gives wrong
physics (0.04-2 eV/atom, up to 14 eV/A). Upstream will not change this back, so here the
layers of one model instance get destination aggregation again (no global monkeypatch).
``exact_dgl=True`` also restores matgl <= 2.2's pruned-list three-body indexing (bit-for-bit
parity, energy jumps at the 4 A three-body cutoff; docs/matgl-m3gnet-aggregation-bug.md).

The matgl subclasses are built lazily (importing this module does not import matgl) and are
importable as ``superion.potential.compat.<name>`` (and ``superion.potential.<name>``).
"""

from __future__ import annotations

_LEGACY_CONV = None
_DGL_CLASSES = None


def _publish(cls):
    """Make a lazily built class importable as ``superion.potential.compat.<name>`` (pickling)."""
    cls.__module__ = __name__
    cls.__qualname__ = cls.__name__
    globals()[cls.__name__] = cls
    return cls


def _conv_classes():
    """(current M3GNetGraphConv, legacy subclass). Built lazily so importing is cheap."""
    global _LEGACY_CONV
    from matgl.layers._graph_convolution import M3GNetGraphConv

    if _LEGACY_CONV is None:
        import torch
        from matgl.utils.maths import scatter_add

        class LegacyM3GNetGraphConv(M3GNetGraphConv):
            """M3GNetGraphConv whose node update sums messages onto each edge's destination atom.

            This is what matgl <= 2.2 did with DGL's ``update_all(copy_e, sum)``; matgl >= 3.0
            scatters onto the source atom (``scatter_add(mess, src)``). Checkpoints trained
            with the old code are only correct with the old aggregation.
            """

            def node_update_(self, edge_index, edge_feat, node_feat, rbf, u_per_edge, num_nodes):
                src, dst = edge_index[0], edge_index[1]
                vi = node_feat[src]
                vj = node_feat[dst]
                if self.include_state:
                    inputs = torch.hstack([vi, vj, edge_feat, u_per_edge])
                else:
                    inputs = torch.hstack([vi, vj, edge_feat])
                mess = self.node_update_func(inputs) * self.node_weight_func(rbf)
                return scatter_add(mess, dst, dim_size=num_nodes, dim=0)

        _LEGACY_CONV = _publish(LegacyM3GNetGraphConv)
    return M3GNetGraphConv, _LEGACY_CONV


def _dgl_exact_classes():
    """(M3GNet subclass, ThreeBodyInteractions subclass) reproducing matgl <= 2.2 bit for bit.

    matgl <= 2.2 (DGL, and PyG up to 4.0.3) built the three-body line graph on the bonds
    inside ``threebody_cutoff`` but then used those *pruned-list* positions as if they were
    parent-graph bond ids (neighbour atom k, cutoff weights, and the bond the message is
    summed onto). matgl 4.1 maps them to the parent bonds correctly. The mis-indexed term
    is what the checkpoints saw in training, but it makes the energy jump (meV) whenever a
    bond crosses the three-body cutoff, so it is opt-in (``exact_dgl=True``) for parity work.
    """
    global _DGL_CLASSES
    if _DGL_CLASSES is None:
        import torch
        from matgl.graph._compute import compute_pair_vector_and_distance, create_line_graph
        from matgl.layers._three_body import ThreeBodyInteractions
        from matgl.models import M3GNet

        class DGLExactThreeBodyInteractions(ThreeBodyInteractions):
            def forward(self, edge_dst_atom, line_edge_index, n_triple_ij, num_bonds, three_basis,
                        three_cutoff, node_feat, edge_feat):
                local = self.__dict__.get("_superion_local_id")
                if local is not None and line_edge_index.numel():
                    line_edge_index = local[line_edge_index.to(torch.long)]
                return super().forward(edge_dst_atom, line_edge_index, n_triple_ij, num_bonds, three_basis,
                                       three_cutoff, node_feat, edge_feat)

        class DGLExactM3GNet(M3GNet):
            def forward(self, g, state_attr=None, l_g=None, return_all_layer_output=False):
                pbc = getattr(g, "pbc_offshift", None)
                with torch.no_grad():
                    bond_vec, bond_dist = compute_pair_vector_and_distance(g.pos, g.edge_index, pbc)
                    l_g = create_line_graph(g.edge_index, bond_dist, bond_vec, pbc, g.pos.size(0),
                                            self.threebody_cutoff)
                    kept = l_g["kept_edge_ids"].to(torch.long)
                    local = torch.zeros(g.edge_index.size(1), dtype=torch.long, device=kept.device)
                    local[kept] = torch.arange(kept.numel(), device=kept.device)
                for tb in self.three_body_interactions:
                    tb.__dict__["_superion_local_id"] = local
                try:
                    return super().forward(g, state_attr=state_attr, l_g=l_g,
                                           return_all_layer_output=return_all_layer_output)
                finally:
                    for tb in self.three_body_interactions:
                        tb.__dict__.pop("_superion_local_id", None)

        _DGL_CLASSES = (_publish(DGLExactM3GNet), _publish(DGLExactThreeBodyInteractions))
    return _DGL_CLASSES


# name -> builder of the lazily created matgl subclasses (PEP 562 access below)
LAZY_CLASSES = {"LegacyM3GNetGraphConv": lambda: _conv_classes()[1],
                "DGLExactM3GNet": lambda: _dgl_exact_classes()[0],
                "DGLExactThreeBodyInteractions": lambda: _dgl_exact_classes()[1]}


def __getattr__(name: str):
    # PEP 562: build the matgl subclasses on first access, so importing this module stays cheap
    if name in LAZY_CLASSES:
        return LAZY_CLASSES[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def set_legacy_aggregation(module, legacy: bool, exact_dgl: bool = False) -> int:
    """Switch every M3GNet graph-conv layer inside ``module`` (one model instance) to
    destination (``legacy=True``) or source (``False``, current matgl) aggregation.

    ``exact_dgl=True`` (only with ``legacy``) also restores matgl <= 2.2's pruned-list
    three-body indexing (see :func:`_dgl_exact_classes`). Swaps the classes of this
    instance's layers only; parameters and other model instances are untouched.
    Returns the number of graph-conv layers switched (0 means not an M3GNet model).
    """
    from matgl.layers._three_body import ThreeBodyInteractions
    from matgl.models import M3GNet

    current, legacy_cls = _conv_classes()
    target = legacy_cls if legacy else current
    n = 0
    exact_model, exact_tb = _dgl_exact_classes()
    exact = bool(legacy and exact_dgl)
    # exact type checks: a user's own subclass of these layers is never replaced
    for sub in module.modules():
        if type(sub) in (current, legacy_cls):
            sub.__class__ = target
            n += 1
        elif type(sub) in (M3GNet, exact_model):
            sub.__class__ = exact_model if exact else M3GNet
        elif type(sub) in (ThreeBodyInteractions, exact_tb):
            sub.__class__ = exact_tb if exact else ThreeBodyInteractions
    return n


def uses_exact_dgl(module) -> bool:
    """True if ``module`` evaluates with matgl <= 2.2's pruned-list three-body indexing."""
    exact_model, _ = _dgl_exact_classes()
    return any(isinstance(m, exact_model) for m in module.modules())


def uses_legacy_aggregation(module) -> bool:
    """True if any graph-conv layer of ``module`` aggregates onto destination atoms (matgl <= 2.2)."""
    _, legacy_cls = _conv_classes()
    return any(isinstance(m, legacy_cls) for m in module.modules())
