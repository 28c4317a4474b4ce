"""The protocol: for each (problem, optimizer), ``studies`` independent tuning studies of
``trials`` points on the validation split, then each study's best setting rerun with seeds
1..``seeds`` on the test split. The whole budget is enqueued in the store when a pair is
created, and workers (processes, commands, machines sharing one storage URL) claim its items one
at a time, so a shared, interrupted or resumed sweep runs exactly the runs of an uninterrupted
one-process sweep (see `store`)."""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import multiprocessing
import os
import platform
import queue
import shlex
import signal
import socket
import sys
import time
import zlib
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from . import store
from .lr_find import centred_space
from .optimizers import Candidate
from .problems import Problem
from .runner import RunRecord, run
from .selection import chosen_setting
from .user import Sources

SAMPLERS = ("qmc", "random")
TUNING_SEED = 1_000_000  # study s tunes with seed TUNING_SEED + s; reruns use 1..seeds
POLL_SECONDS = 0.5  # a worker with nothing free waits this long before asking again
STOP_SECONDS = 4.0  # an interrupted command waits this long for its workers, then kills them
WORKER_MEMORY_MB = 600  # what one worker process needs at most on the built-in problems
OnRun = Callable[[str, str], None]  # called with (problem, optimizer) after each run this command stored


class RunFailed(RuntimeError):
    """A run raised; its item was given back (a re-run tries the same point again)."""


class Interrupted(BaseException):
    """SIGTERM to the command, raised like KeyboardInterrupt so that workers stop and release."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@dataclass(frozen=True)
class Plan:
    """How much to run per (problem, optimizer): ``studies`` tuning studies of ``trials`` points
    from ``sampler`` (``qmc``: scrambled Halton; ``random``: uniform), then ``seeds`` reruns of
    each study's best setting. ``lr_find``: each learning-rate range is first centred on the LR
    range test's suggestion on the problem (`lr_find.centred_space`, with study 0's tuning seed)."""

    trials: int
    seeds: int
    studies: int = 1
    sampler: str = "qmc"
    sampler_seed: int = 0
    lr_find: bool = False

    def __post_init__(self):
        for name in ("trials", "seeds", "studies"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if not isinstance(self.lr_find, bool):
            raise ValueError(f"lr_find must be True or False, got {self.lr_find!r}")

    @property
    def seed_values(self) -> tuple[int, ...]:
        return tuple(range(1, self.seeds + 1))

    def to_dict(self) -> dict:
        plan = asdict(self)
        if not self.lr_find:  # a store made before the option holds the same plan
            del plan["lr_find"]
        return plan

    def points(self, space, study: int) -> list[dict[str, float]]:
        """Study ``study``'s tuning points. Seeded by the sampler seed, the study and the search
        space itself (not the optimizer's name), so candidates with the same space get the same
        points (common random numbers); point k depends only on k, so a larger budget adds points.
        An empty space has none: its reruns use the defaults."""
        if not space:
            return []
        space_key = zlib.crc32(json.dumps([h.to_dict() for h in space], sort_keys=True).encode())
        generator = np.random.default_rng([self.sampler_seed, study, space_key])
        if self.sampler == "qmc":
            from scipy.stats import qmc  # noqa: PLC0415 (scipy is slow to import; only the sweep needs it)

            unit = qmc.Halton(len(space), scramble=True, seed=generator).random(self.trials)
        else:
            unit = generator.random((self.trials, len(space)))
        return [{h.name: _scaled(h, float(u)) for h, u in zip(space, row)} for row in unit]

    def budget(self, problem: Problem, candidate: Candidate) -> store.PairBudget:
        """The pair's items: ``studies`` studies of ``trials`` points, then the seed reruns of each;
        an untuned candidate: one study of no points, its defaults rerun over the same seeds
        (more studies would repeat the same runs)."""
        studies = 1 if candidate.untuned else self.studies
        space = centred_space(problem, candidate, TUNING_SEED) if self.lr_find else candidate.space
        return store.PairBudget(problem.spec, candidate.label, [h.to_dict() for h in space],
                                [self.points(space, s) for s in range(studies)],
                                [TUNING_SEED + s for s in range(studies)], self.seed_values)


def _scaled(h, u: float) -> float:
    if h.log:
        return float(math.exp(math.log(h.low) + u * (math.log(h.high) - math.log(h.low))))
    return float(h.low + u * (h.high - h.low))


def resolve(names: Sequence[tuple[str, str]], sources: Sources) -> list[tuple[Problem, Candidate]]:
    """(problem, optimizer) names as the objects they name: built in or from the user's files."""
    return [(sources.problem(problem), sources.candidate(optimizer)) for problem, optimizer in names]


def machine_meta(command: str | None = None) -> dict:
    """How the store was made: the command, versions, CPU, threads and start time."""
    import torch  # noqa: PLC0415

    import optimlab  # noqa: PLC0415

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as file:
            cpu = next((line.split(":", 1)[1].strip() for line in file if line.startswith("model name")), cpu)
    return {"command": command or shlex.join(sys.argv), "cpu": cpu, "threads": torch.get_num_threads(),
            "cores": os.cpu_count(), "versions": {"optimlab": optimlab.__version__, "torch": torch.__version__,
                                                  "python": platform.python_version()},
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def check(storage_url: str, plan: Plan, extend: bool = False) -> None:
    """Everything about the store that can be refused, checked without creating anything: the
    URL, its driver, a readable store, and a plan the store was made with (or ``extend``)."""
    opened = store.Store(storage_url)
    try:
        store.check_plan(opened.stored_plan(), plan.to_dict(), extend)
    finally:
        opened.dispose()


def prepare(opened: store.Store, pairs: Sequence[tuple[Problem, Candidate]], plan: Plan, extend: bool,
            command: str | None) -> list[int]:
    return opened.prepare(plan.to_dict(), machine_meta(command),
                          [plan.budget(problem, candidate) for problem, candidate in pairs], extend)


def _run_item(opened: store.Store, item: store.Item, problem: Problem, candidate: Candidate) -> RunRecord | None:
    if item.kind == store.TUNE:
        return run(problem, candidate, item.hparams, item.seed, "validation")
    hparams = chosen_setting(problem.spec, candidate.space, opened.tuning_records(item.pair_id, item.study))
    if hparams is None:
        return None  # every tuning run of the study diverged: nothing to rerun
    if item.record is not None and item.record.hparams == hparams:
        return item.record  # an extended budget did not change this study's best setting
    return run(problem, candidate, hparams, item.seed, "test")


def work(opened: store.Store, pairs: dict[int, tuple[Problem, Candidate]], on_run: OnRun | None = None) -> None:
    """Claim and run items of ``pairs`` (by pair id) until all of them are done; wait while
    other workers hold the rest."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    ids = list(pairs)
    while True:
        item = opened.claim(ids, worker)
        if item is None:
            done, total = opened.progress(ids)
            if done == total:
                return
            time.sleep(POLL_SECONDS)
            continue
        problem, candidate = pairs[item.pair_id]
        try:
            with opened.holding(item):
                record = _run_item(opened, item, problem, candidate)
        except Exception as error:
            opened.release(item)
            raise RunFailed(f"{problem.name}/{candidate.label}: the {item.kind} run of study {item.study}, "
                            f"{'point' if item.kind == store.TUNE else 'seed'} {item.number} raised "
                            f"{type(error).__name__}: {error}") from error
        except BaseException:  # interrupted: give the item back at once rather than at lease expiry
            with contextlib.suppress(Exception):
                opened.release(item)
            raise
        if opened.finish(item, record) and on_run:
            on_run(problem.name, candidate.label)


def run_pairs(storage_url: str, pairs: Sequence[tuple[Problem, Candidate]], plan: Plan,
              on_run: OnRun | None = None, *, extend: bool = False, command: str | None = None) -> None:
    """The sweep of ``pairs`` (objects, e.g. a problem defined in this process), in this process."""
    opened = store.Store(storage_url)
    try:
        ids = prepare(opened, pairs, plan, extend, command)
        work(opened, dict(zip(ids, pairs)), on_run)
    finally:
        opened.dispose()


def default_workers() -> int:
    return min(os.cpu_count() or 1, 2)


def workers_cap(requested: int, pending: int) -> tuple[int, str | None]:
    """``requested`` workers capped by the pending runs and the available memory, with the warning
    to show when capped."""
    available_mb = _available_memory_mb()
    by_memory = max(1, int(available_mb // WORKER_MEMORY_MB)) if available_mb else requested
    capped = max(1, min(requested, max(pending, 1), by_memory))
    if capped == requested:
        return requested, None
    reason = (f"{pending} runs are left" if capped == max(pending, 1)
              else f"{available_mb / 1024:.1f} GiB of memory is available ({WORKER_MEMORY_MB} MB a worker)")
    return capped, f"warning: --workers {requested} capped to {capped}: {reason}"


def _available_memory_mb() -> float | None:
    with contextlib.suppress(OSError, StopIteration, ValueError):
        with open("/proc/meminfo") as file:
            return int(next(line for line in file if line.startswith("MemAvailable")).split()[1]) / 1024
    return None


def _interrupt(signum, _frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within: SIGTERM raises `Interrupted`, as SIGINT raises KeyboardInterrupt."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when its command dies, even by SIGKILL (no orphans running on)."""
    with contextlib.suppress(Exception):
        import ctypes  # noqa: PLC0415

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _worker(storage_url: str, names: list[tuple[str, str]], threads: int, events, sources: Sources) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the command, which stops us
    signal.signal(signal.SIGTERM, _interrupt)
    _die_with_parent()
    import torch  # noqa: PLC0415

    torch.set_num_threads(threads)
    opened = store.Store(storage_url)
    try:
        pairs = dict(zip(opened.pair_ids(names), resolve(names, sources)))
        work(opened, pairs, on_run=lambda problem, optimizer: events.put(("run", problem, optimizer)))
    except Interrupted:
        sys.exit(0)
    except (RunFailed, store.StorageUnreachable, store.NotAStore, ValueError) as error:
        events.put(("error", type(error).__name__, str(error)))
        sys.exit(1)
    finally:
        opened.dispose()


_ERRORS = {"RunFailed": RunFailed, "StorageUnreachable": store.StorageUnreachable, "NotAStore": store.NotAStore,
           "ValueError": ValueError}


def run_parallel(storage_url: str, names: Sequence[tuple[str, str]], plan: Plan, workers: int,
                 on_run: OnRun | None = None, sources: Sources = Sources(), *, extend: bool = False,
                 command: str | None = None) -> None:
    """The sweep of named (problem, optimizer) pairs over ``workers`` processes on this machine
    (one: in this process). Several commands on several machines may share one storage URL;
    they split the items through the store. ``sources`` adds the user's problem and optimizer
    files to the registries."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    pairs = resolve(names, sources)
    opened = store.Store(storage_url)
    try:
        ids = prepare(opened, pairs, plan, extend, command)
        done, total = opened.progress(ids)
        if done == total:
            return
        threads = max(1, (os.cpu_count() or 1) // workers)
        if workers == 1:
            import torch  # noqa: PLC0415

            torch.set_num_threads(threads)
            work(opened, dict(zip(ids, pairs)), on_run)
            return
    finally:
        opened.dispose()
    _run_processes(storage_url, list(names), workers, threads, on_run, sources)


def _run_processes(storage_url: str, names: list[tuple[str, str]], workers: int, threads: int,
                   on_run: OnRun | None, sources: Sources) -> None:
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    # started with SIGINT ignored (inherited through exec), so that Ctrl-C in the terminal
    # reaches only this process, which then stops the workers
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    error, received, processes = None, [], []
    try:
        for _ in range(workers):
            processes.append(context.Process(target=_worker, args=(storage_url, names, threads, events, sources),
                                             daemon=True))
            processes[-1].start()
        # Ctrl-C and SIGTERM are noted and acted on in this loop: raised from the handler, an
        # exception that lands in a finalizer (a database connection's, say) is printed and
        # dropped, and the sweep would run on.
        for signum in previous:
            signal.signal(signum, lambda signum, _frame: received.append(signum))
        while error is None and not received and (any(p.is_alive() for p in processes) or not events.empty()):
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                continue
            if event[0] == "run":
                on_run and on_run(*event[1:])
            else:
                error = _ERRORS[event[1]](event[2])
        if received:
            raise KeyboardInterrupt if received[0] == signal.SIGINT else Interrupted(received[0])
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _stop(processes)
    if error is not None:
        raise error
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} sweep worker(s) died (exit codes {failed}); re-run the same command "
                           f"to resume")


def _stop(processes) -> None:
    """SIGTERM the workers still running (they give their items back), SIGKILL any that linger."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
