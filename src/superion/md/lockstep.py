"""Lockstep evaluation: R replicas, each stepped by its own ASE integrator, share one model call.

Every replica runs its whole single-run loop (:func:`superion.md.run.execute_run`: ASE
integrator, observers, run directory) as a greenlet of :meth:`Lockstep.run`. Its atoms carry
a :class:`LockstepCalculator`; when the integrator asks for forces, the calculator hands the
positions to the hub and the replica is suspended. When *every* unfinished replica waits there,
the hub answers all of them with one call of ``evaluate(indices, atoms)``
(:class:`superion.potential.batch.BatchEvaluator`: one batched graph, one forward), then runs
each on to its next request. Everything happens in replica order in one OS thread, so the
batch holds the same replicas in the same order on every step and a rerun repeats it. A replica
that raises (stability guard, a failing evaluation) leaves the lockstep alone; the rest go on.
Ctrl-C interrupts every replica at its pending force call (each is marked "interrupted", as
``superion md`` marks itself).

Why greenlets: a replica steps with exactly ASE's MTK/NHC code (so it *is* the single run,
bitwise where the forces are) and its state capture stays the single run's
(:meth:`superion.md.engine.AseEngine.get_state`). OS threads would do the same with a GIL
hand-off and a scheduler wake-up per replica and step; a greenlet round trip costs ~0.8 µs of
CPU (measured) and runs nothing concurrently. What the lockstep adds per replica-step over a
single run's loop, against the model call, is measured by ``bench/md_throughput.py``
(bench/RESULTS.md).
"""

from __future__ import annotations

from typing import Callable, Sequence

from ase.calculators.calculator import Calculator, all_changes

# evaluate(replica indices, their ase.Atoms) -> one result dict (energy, free_energy, forces,
# stress) or one exception per structure, in order.
Evaluate = Callable[[Sequence[int], Sequence], list]


class LockstepCalculator(Calculator):
    """ASE calculator of replica ``index``: its evaluations are answered by the :class:`Lockstep` hub.

    Results are those of the hub's ``evaluate`` (for M3GNet the keys and dtypes of matgl's
    ``PESCalculator``: energy eV, forces (N, 3) float32 eV/Å, stress Voigt eV/Å³).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, hub: "Lockstep", index: int) -> None:
        super().__init__()
        self.hub = hub
        self.index = index

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)  # self.atoms = copy of atoms
        self.results = dict(self.hub.request(self.index, self.atoms))


class Lockstep:
    """The hub: runs replica tasks as greenlets and answers their force requests in batches.

    ``evaluate`` is called from the hub (the thread that called :meth:`run`) only. ``calls``
    counts its calls, ``replica_evaluations`` the structures evaluated and ``sizes`` the size of
    each call.
    """

    def __init__(self, evaluate: Evaluate) -> None:
        self.evaluate = evaluate
        self.calls = 0
        self.replica_evaluations = 0
        self.sizes: list[int] = []
        self._hub = None
        self._index: dict = {}  # replica greenlet -> replica index

    def calculator(self, index: int) -> LockstepCalculator:
        """A calculator for replica ``index`` (the index of its task in :meth:`run`)."""
        return LockstepCalculator(self, index)

    def request(self, index: int, atoms) -> dict:
        """Forces etc. of ``atoms`` for replica ``index``: batched inside :meth:`run`, at once outside."""
        from greenlet import getcurrent

        if self._index.get(getcurrent()) != index:
            # Not running as that replica (e.g. set-up code in the hub): evaluate alone.
            return _unwrap(self._call([index], [atoms])[0])
        return _unwrap(self._hub.switch(atoms))  # back to the hub until the batch is answered

    def run(self, tasks: Sequence[Callable[[], object]]) -> list:
        """Run ``tasks[i]()`` for every replica i; return each one's result or the exception it raised.

        Each task runs until it asks for forces; when all unfinished tasks have asked, one
        ``evaluate`` answers them and each runs on to its next request, in replica order. A
        KeyboardInterrupt (in the hub or in a replica) interrupts every unfinished replica at
        its pending force call, lets it mark itself, and is re-raised.
        """
        from greenlet import getcurrent, greenlet

        self._hub = getcurrent()
        outcomes: list = [None] * len(tasks)
        pending: dict[int, object] = {}

        def wrap(i: int, task):
            def body(*_):  # the first switch passes no reply
                try:
                    outcomes[i] = task()
                except BaseException as exc:  # recorded for the caller; the other replicas go on
                    outcomes[i] = exc
            return body

        lets = [greenlet(wrap(i, t), parent=self._hub) for i, t in enumerate(tasks)]
        self._index = {g: i for i, g in enumerate(lets)}

        def advance(i: int, reply=None) -> None:
            g = lets[i]
            msg = g.switch(reply)
            if g.dead:
                if isinstance(outcomes[i], KeyboardInterrupt):
                    raise outcomes[i]  # Ctrl-C arrived while this replica was running
            else:
                pending[i] = msg

        try:
            for i in range(len(lets)):
                advance(i)
            while pending:
                batch = sorted(pending.items())  # replica order: the same batch every step
                pending.clear()
                replies = self._call([i for i, _ in batch], [atoms for _, atoms in batch])
                for (i, _), reply in zip(batch, replies):
                    advance(i, reply)
        except BaseException as exc:
            stop = KeyboardInterrupt(f"batch stopped ({type(exc).__name__})")
            for i, g in enumerate(lets):
                if g:  # started and not finished: interrupt it where it waits for forces
                    g.throw(stop)
                elif not g.dead:  # never started
                    outcomes[i] = stop
            raise
        finally:
            self._index = {}
        return outcomes

    def _call(self, indices: list[int], structures: list) -> list:
        self.calls += 1
        self.replica_evaluations += len(structures)
        self.sizes.append(len(structures))
        try:
            out = list(self.evaluate(indices, structures))
        except Exception as exc:  # an evaluator bug or a device error: every requester gets it
            out = [exc] * len(structures)
        if len(out) != len(structures):
            raise RuntimeError(f"evaluator returned {len(out)} results for {len(structures)} structures")
        return out


def _unwrap(reply):
    if isinstance(reply, BaseException):
        raise reply
    return reply


def sequential_evaluator(calculators: Sequence) -> Evaluate:
    """``evaluate`` that gives replica i's structure to its own ASE calculator ``calculators[i]``
    (tests, custom calculators): each replica's results equal a single run with its calculator."""
    def evaluate(indices, structures):
        out = []
        for i, atoms in zip(indices, structures):
            calc = calculators[i]
            try:
                calc.calculate(atoms, ["energy", "forces", "stress"], all_changes)
                out.append(dict(calc.results))
            except Exception as exc:  # this replica fails alone
                out.append(exc)
        return out

    return evaluate


def batched(evaluate_structures: Callable[[Sequence], list]) -> Evaluate:
    """An ``evaluate`` for the hub from one that needs only the structures (a batched model)."""
    return lambda indices, structures: evaluate_structures(structures)
