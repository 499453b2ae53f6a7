"""The MD step loop: advance an engine and call the due observers after each step.

In the spirit of ASE's ``dyn.attach(fn, interval)`` + ``dyn.run(steps)``, with the schedule
kept by the observers (:mod:`superion.md.observers`) and each observer attached to the replica
view it watches: a single-replica engine is its own view; a batched engine attaches each
replica's observers with that replica's view and steps all replicas at once.
"""

from __future__ import annotations

import time

import numpy as np

from superion.errors import SimulationError
from superion.killpoints import kill_point


class StepLoop:
    """Steps ``engine`` (``evaluate()``, ``step()``) and calls observers in attach order.

    After :meth:`run` (or when it raised), ``step`` is the step being integrated or observed
    last (the step a failure belongs to), and ``loop_s`` / ``loop_cpu_s`` are the wall and CPU
    seconds of this process spent in steps ``start_step + 1 ..`` (step 0's evaluation excluded).
    """

    def __init__(self, engine, observers=()) -> None:
        self.engine = engine
        self.entries: list[tuple[object, object]] = []
        self.step = 0
        self.loop_s = 0.0
        self.loop_cpu_s = 0.0
        for obs in observers:
            self.attach(obs)

    def attach(self, observer, replica=None):
        """Call ``observer(step, replica)`` when ``observer.due(step)``; replica defaults to the engine."""
        self.entries.append((observer, self.engine if replica is None else replica))
        return observer

    def observe(self, step: int) -> None:
        """Call every due observer at ``step``, in attach order."""
        kill_point("observe", step)
        for obs, replica in self.entries:
            if obs.due(step):
                obs(step, replica)

    def run(self, start_step: int, total_steps: int, *, fresh: bool | None = None) -> None:
        """Integrate from ``start_step`` to ``total_steps``.

        A ``fresh`` run (default: ``start_step == 0``) first evaluates the starting structure and
        observes step 0; otherwise the engine is assumed restored at ``start_step``, already
        observed — also a resume from the step-0 checkpoint, which must not record step 0 twice.
        An observer raising (e.g. :class:`SimulationError`) stops the loop. When ``engine.step()``
        itself raises anything else, each observer's ``on_step_error(step, replica, exc)`` may
        raise a :class:`SimulationError` naming the cause; otherwise the original error propagates.
        """
        self.step = start_step
        # An exploding run overflows inside the thermostat; the guard reports it, numpy need not.
        with np.errstate(over="ignore", invalid="ignore"):
            if (start_step == 0) if fresh is None else fresh:
                self.engine.evaluate()
                self.observe(0)
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                for step in range(start_step + 1, total_steps + 1):
                    self.step = step
                    try:
                        self.engine.step()
                    except SimulationError:
                        raise
                    except Exception as exc:
                        for obs, replica in self.entries:
                            hook = getattr(obs, "on_step_error", None)
                            if hook is not None:
                                hook(step, replica, exc)
                        raise
                    self.observe(step)
            finally:
                self.loop_s = time.perf_counter() - t0
                self.loop_cpu_s = time.process_time() - c0
