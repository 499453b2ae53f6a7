"""``run_md_batch``: R replicas of one system (temperatures, mass settings, seeds) in lockstep.

Each replica is a run directory exactly as ``superion md`` writes it: the same
:func:`~superion.md.run.plan_run` / :func:`~superion.md.run.open_run` /
:func:`~superion.md.run.execute_run` as :func:`~superion.md.run.run_md`, the same settings
hash (so a replica can be resumed by ``superion md`` and the other way round), the same
observers and files. What differs is only where forces come from: every replica's ASE
integrator asks a :class:`~superion.md.lockstep.Lockstep` hub, which answers all replicas with
one batched model call per step (:class:`~superion.potential.batch.BatchEvaluator`).

Per replica, as a single run: complete replicas are skipped, the others start fresh or resume
from their own checkpoint (replicas may be at different steps: each steps until its own end);
one replica stopped by the stability guard is marked failed and the rest go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from superion.errors import SimulationError, SuperionError
from superion.layout import temp_tag
from superion.md.lockstep import Lockstep, batched, sequential_evaluator
from superion.md.observers import ProgressReporter, print_line
from superion.md.run import (RunResult, check_progress_interval, custom_record, execute_run, open_run, plan_run,
                             potential_id)
from superion.md.settings import MDSettings

DEFAULT_NAME = "T{T}K_{mass}_seed{seed}"


@dataclass
class Replica:
    """One member of a batch: its run directory and its settings (temperature, masses, seed, ...)."""

    out_dir: Path
    settings: MDSettings
    structure: Path | None = None  # None: the batch's structure


@dataclass
class BatchResult:
    """Per replica a :class:`RunResult`, or the exception that stopped it; batched model calls."""

    replicas: list[Replica]
    results: list
    model_calls: int = 0
    replica_evaluations: int = 0
    wall_s: float = 0.0
    largest_batch: int = 0
    messages: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[tuple[Replica, BaseException]]:
        return [(r, x) for r, x in zip(self.replicas, self.results) if isinstance(x, BaseException)]

    def raise_failures(self) -> None:
        """Re-raise what stopped replicas: any non-simulation error first, else one SimulationError."""
        failed = self.failed
        for _, exc in failed:
            if not isinstance(exc, SimulationError):
                raise exc
        if failed:
            names = "; ".join(f"{r.out_dir}: {exc}" for r, exc in failed)
            raise SimulationError(f"{len(failed)} of {len(self.replicas)} replicas failed: {names}")


def mass_label(mass_scale: Mapping[str, float]) -> str:
    """Run-directory tag of a mass setting: {} -> 'ref', {'B12H12': 10} -> 'B12H12x10'."""
    return "+".join(f"{k}x{v:g}" for k, v in sorted(mass_scale.items())) or "ref"


def parse_mass_settings(specs: Sequence[str]) -> list[dict[str, float]]:
    """``['ref', 'B12H12=10', 'B12H12=10,BH4=5']`` -> [{}, {'B12H12': 10.0}, {'B12H12': 10.0, 'BH4': 5.0}]."""
    from superion.md.masses import parse_mass_scale

    out = []
    for spec in specs:
        text = str(spec).strip()
        out.append({} if text.lower() in ("ref", "none", "") else parse_mass_scale(text.split(",")))
    return out


def batch_replicas(out: str | os.PathLike, base: MDSettings, temperatures_K: Sequence[float],
                   seeds: Sequence[int] | None = None, mass_settings: Sequence[Mapping[str, float]] | None = None,
                   name: str = DEFAULT_NAME) -> list[Replica]:
    """Replicas = mass settings × (temperature, seed) pairs, each under ``out/name``.

    ``seeds``: None (``base.seed`` for all), one seed for all, or one per temperature.
    ``mass_settings``: None (``base.mass_scale``) or one mapping per setting ({} = unscaled).
    ``name`` may use ``{T}`` (as in ``T600K``), ``{mass}`` (:func:`mass_label`) and ``{seed}``,
    and may contain ``/`` (the workflow uses ``T{T}K/seed{seed}``). SuperionError for an empty
    temperature list, a seed count that fits neither, or two replicas with one directory.
    """
    from superion.md.masses import parse_mass_scale

    temps = [float(t) for t in temperatures_K]
    if not temps:
        raise SuperionError("no temperatures; give --temperatures-K T1 [T2 ...]")
    if seeds is None or len(seeds) == 0:
        seeds = [base.seed]
    if len(seeds) == 1:
        seeds = list(seeds) * len(temps)
    if len(seeds) != len(temps):
        raise SuperionError(f"--seeds has {len(seeds)} values for {len(temps)} temperatures; give one seed "
                            "for all or one per temperature")
    masses = [parse_mass_scale(m) for m in (mass_settings if mass_settings else [base.mass_scale])]
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise SuperionError(f"--name {name!r} must be a relative path inside --out")
    out = Path(out)
    replicas, seen = [], {}
    for mass in masses:
        for t, seed in zip(temps, seeds):
            try:
                rel = name.format(T=temp_tag(t), mass=mass_label(mass), seed=int(seed))
            except (KeyError, IndexError, ValueError) as exc:
                raise SuperionError(f"--name {name!r}: unknown placeholder {exc}; use {{T}}, {{mass}} and {{seed}}") from None
            if rel in seen:
                raise SuperionError(f"two replicas would share the run directory {out / rel}; put {{T}}, {{mass}} and "
                                    "{seed} in --name or give distinct temperatures/seeds")
            seen[rel] = True
            settings = dataclasses.replace(base, temperature_K=t, seed=int(seed), mass_scale=dict(mass))
            replicas.append(Replica(out / rel, settings))
    return replicas


@contextlib.contextmanager
def locked_replicas(replicas: Sequence[Replica], wait_s: float = 0.0) -> Iterator[None]:
    """Hold :func:`superion.locks.run_dir_lock` on every replica's run directory, as ``superion md``
    holds it on its one: a replica held by another process fails the batch at once naming the
    holder, or (``wait_s`` > 0: the workflow) is waited for, then resumed or found complete.
    Taken in path order, so two overlapping batches cannot deadlock."""
    from superion.locks import run_dir_lock

    with contextlib.ExitStack() as stack:
        for d in sorted({Path(r.out_dir).resolve() for r in replicas}):
            stack.enter_context(run_dir_lock(d, wait_s=wait_s))
        yield


def run_md_batch(
    structure: str | os.PathLike,
    replicas: Sequence[Replica],
    *,
    potential: str | None = None,
    calculators: Sequence | None = None,
    device: str = "auto",
    threads: int | None = None,
    legacy: bool | None = None,
    log=print_line,
    progress_every_s: float | None = 300.0,
    models_dir: str | os.PathLike | None = None,
    batched_graph: bool | None = None,
) -> BatchResult:
    """Run (or resume, or skip) every replica, all live ones advanced together, one model call per step.

    Give ``potential`` (as ``run_md``) or ``calculators`` (one ASE calculator per replica, each
    evaluated on its own: tests and custom models). Replica i equals ``run_md(structure,
    replicas[i].out_dir, replicas[i].settings, ...)`` with the same potential: same settings
    hash and files; trajectories bitwise with per-replica calculators, and to float32 rounding
    with a batched M3GNet (see :mod:`superion.potential.batch`). Everything is checked before any
    run directory is written. Progress lines (never a bar) carry the replica's directory.
    ``batched_graph``: one batched graph per step (True), or the replicas' graphs one after
    another in the same lockstep (False: bitwise the single runs); None = True on CUDA, False on
    the CPU, where batching gains nothing (bench/RESULTS.md).
    Returns a :class:`BatchResult`; :meth:`BatchResult.raise_failures` turns failures into errors.
    """
    t_wall = time.perf_counter()
    check_progress_interval(progress_every_s)
    replicas = list(replicas)
    if not replicas:
        raise SuperionError("no replicas to run; give at least one temperature")
    if (potential is None) == (calculators is None):
        raise SuperionError("give exactly one of a potential name (--potential) or per-replica calculators")
    if calculators is not None and len(calculators) != len(replicas):
        raise SuperionError(f"{len(calculators)} calculators for {len(replicas)} replicas; give one per replica")
    dirs = [Path(r.out_dir).resolve() for r in replicas]
    if len(set(dirs)) != len(dirs):
        raise SuperionError("two replicas share one run directory; give each its own")
    for r in replicas:
        r.settings.validate()

    planned = [plan_run(r.structure or structure, r.out_dir, r.settings,
                        potential_id(potential, calculators[i] if calculators is not None else None, legacy))
               for i, r in enumerate(replicas)]
    results: list = [None] * len(replicas)
    todo = []
    for i, p in enumerate(planned):
        if p.plan.action == "complete":
            log(f"superion md-batch: {p.run.path} is already complete; nothing to do")
            results[i] = p.already_complete()
        else:
            todo.append(i)
    out = BatchResult(replicas, results)
    if not todo:
        out.wall_s = time.perf_counter() - t_wall
        return out

    if potential is not None:
        from superion.potential import load_checked

        symbols = sorted({s for i in todo for s in planned[i].atoms.get_chemical_symbols()})
        lp = load_checked(potential, device=device, threads=threads, legacy=legacy, symbols=symbols,
                          models_dir=models_dir)
        if batched_graph is None:
            batched_graph = lp.device.startswith("cuda")
        evaluator = lp.batch_evaluator(batched_graph=batched_graph)
        evaluate = batched(evaluator)
        records = [{**lp.record(), "requested": str(potential)} for _ in todo]
    else:
        from superion.potential import set_threads

        set_threads(threads)
        evaluate = sequential_evaluator([calculators[i] for i in todo])
        records = [custom_record(planned[i].potential_id) for i in todo]
    for i, rec in zip(todo, records):
        planned[i].run.check_potential(planned[i].plan, rec["sha256"], planned[i].potential_id)

    hub = Lockstep(evaluate)
    opened = []
    try:
        for k, i in enumerate(todo):
            opened.append(open_run(planned[i], hub.calculator(k), records[k], threads=threads, log=log))
    except BaseException as exc:  # a replica's checkpoint could not be read: leave the others resumable
        for k, o in enumerate(opened):
            planned[todo[k]].run.mark_interrupted(exc, n_frames=o.writer.n_frames)
            o.writer.close()
            o.thermo.close()
        raise
    how = ("one batched model call per step" if potential is None or batched_graph
           else "model called per replica: bitwise single runs")
    log(f"superion md-batch: {len(todo)} replicas in lockstep ({how}), "
        f"{len(replicas) - len(todo)} already complete")

    def task(i: int, o):
        p = planned[i]
        s = p.settings
        progress = ProgressReporter(s.total_steps, o.start_step, s.timestep_fs, every_s=progress_every_s,
                                    write=_prefixed(log, p.run.path), tty=False)
        return lambda: execute_run(p, o, progress, t_wall=t_wall)

    outcomes = hub.run([task(i, o) for i, o in zip(todo, opened)])
    for i, res in zip(todo, outcomes):
        results[i] = res
        if isinstance(res, BaseException):
            msg = f"superion md-batch: {planned[i].run.path}: stopped: {res}"
        else:
            msg = f"superion md-batch: {res.run_dir}: {res.steps_done} steps, {res.n_frames} frames"
        out.messages.append(msg)
        log(msg)
    if potential is not None and evaluator.fallbacks:
        out.messages.append(f"superion md-batch: warning: {evaluator.fallbacks} of {hub.calls} batched model calls "
                            f"failed and were evaluated one structure at a time (first: {evaluator.fallback_error})")
        log(out.messages[-1])
    out.model_calls, out.replica_evaluations = hub.calls, hub.replica_evaluations
    out.largest_batch = max(hub.sizes, default=0)
    out.wall_s = time.perf_counter() - t_wall
    return out


def _prefixed(log, run_path: Path):
    """Progress lines of one replica: 'superion md: [time] text' -> 'superion md: RUN_DIR: [time] text'."""
    head = "superion md: "

    def write(line: str) -> None:
        log(f"{head}{run_path}: {line[len(head):]}" if line.startswith(head) else f"{run_path}: {line}")

    return write

