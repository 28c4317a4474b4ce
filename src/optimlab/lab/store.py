"""The sweep's store: Optuna studies in an RDB (SQLite file by default, or e.g. PostgreSQL).

One study per (problem, optimizer, stage): stage "tune" holds the learning-rate search on the
validation split, stage "seeds" the reruns of the best setting on the test split. Each finished
trial carries its full `RunRecord` as the user attribute "run", so a report can be rebuilt from
the store alone. Study user attributes hold the problem's spec and the trial budget.

Interrupted trials: workers send Optuna heartbeats; a RUNNING trial whose heartbeat stopped
(its process was killed) is failed after `GRACE_PERIOD` seconds and re-queued with the same
parameters. A trial only counts as done when it finished *and* carries its record.
"""

from __future__ import annotations

import datetime
import logging
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._rdb import models as rdb_models
from optuna.trial import FrozenTrial, TrialState

from .problems import ProblemSpec
from .runner import RunRecord

STAGES = ("tune", "seeds")
HEARTBEAT_INTERVAL = 1  # seconds
GRACE_PERIOD = 4  # seconds without heartbeat before a RUNNING trial is declared dead
SAMPLERS = ("qmc", "tpe")
RUN_ATTR = "run"

optuna.logging.set_verbosity(logging.ERROR)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def default_storage(out_dir: str | Path) -> str:
    return f"sqlite:///{Path(out_dir).resolve() / 'optimlab.db'}"


def open_storage(url: str) -> RDBStorage:
    if "://" not in url:
        raise ValueError(f"storage must be a database URL such as sqlite:///sweep.db or "
                         f"postgresql://user@host/db, got {url!r}")
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_INTERVAL,
                      grace_period=GRACE_PERIOD,
                      heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback())


def study_name(problem: str, optimizer: str, stage: str) -> str:
    return f"{problem}/{optimizer}/{stage}"


def parse_study_name(name: str) -> tuple[str, str, str] | None:
    parts = name.split("/")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 and parts[2] in STAGES else None


def make_sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    """Deterministic samplers: scrambled Halton points (even coverage, good for small budgets,
    resumable because point k depends only on k) or TPE (adaptive, for larger budgets)."""
    if kind == "qmc":
        return optuna.samplers.QMCSampler(qmc_type="halton", scramble=True, seed=seed,
                                          independent_sampler=optuna.samplers.RandomSampler(seed=seed),
                                          warn_independent_sampling=False, warn_asynchronous_seeding=False)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {kind!r}")


def open_study(storage: RDBStorage, spec: ProblemSpec, optimizer: str, stage: str, *, budget: int,
               sampler: str = "qmc", sampler_seed: int = 0) -> optuna.Study:
    name = study_name(spec.name, optimizer, stage)
    study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                direction="maximize" if spec.higher_is_better else "minimize",
                                sampler=make_sampler(sampler, sampler_seed + zlib.crc32(name.encode())))
    wanted = {"problem": spec.to_dict(), "optimizer": optimizer, "stage": stage, "budget": budget}
    for key, value in wanted.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)
    return study


def record_of(trial: FrozenTrial) -> RunRecord | None:
    data = trial.user_attrs.get(RUN_ATTR)
    return RunRecord.from_dict(data) if data is not None else None


def done_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Finished trials with a stored record (COMPLETE, or FAIL for a diverged run), by trial number."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
    return sorted((t for t in trials if RUN_ATTR in t.user_attrs), key=lambda t: t.number)


def _start_heartbeats_of_orphans(study: optuna.Study) -> None:
    """Give a heartbeat to RUNNING trials that never had one and started over `GRACE_PERIOD`
    ago: their process died between creating the trial and its first heartbeat (Optuna skips
    such trials when it fails stale ones, so they would stay RUNNING for ever). A live trial
    beats within milliseconds of its start; an orphan, given one beat, goes stale after
    `GRACE_PERIOD` and is failed and re-queued like any other."""
    storage = getattr(study._storage, "_backend", study._storage)  # under Optuna's cache wrapper
    if not isinstance(storage, RDBStorage):
        return
    now = datetime.datetime.now()
    old = [t._trial_id for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
           if t.datetime_start is not None and (now - t.datetime_start).total_seconds() > GRACE_PERIOD]
    if not old:
        return
    session = storage.scoped_session()
    try:
        orphans = [trial.trial_id for trial in session.query(rdb_models.TrialModel)
                   .filter(rdb_models.TrialModel.trial_id.in_(old)).all() if not trial.heartbeats]
    finally:
        session.close()
    for trial_id in orphans:
        storage.record_heartbeat(trial_id)


def pending_trials(study: optuna.Study) -> tuple[int, int]:
    """(running, waiting) trial counts, after failing and re-queueing trials of dead workers."""
    _start_heartbeats_of_orphans(study)
    optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return running, len(trials) - running


@dataclass
class PairRecords:
    """Everything the store holds of one (problem, optimizer): what the verdict is built from.

    ``tuning[s]`` is study ``s``'s finished tuning runs in point order, cut to the budget;
    ``reruns[s]`` the finished seed reruns of study ``s``'s best setting, by seed; ``plan`` the budget the
    sweep ran with (``trials``, ``seeds``, ``studies``, ``sampler``...).
    """

    spec: ProblemSpec
    optimizer: str
    plan: dict
    tuning: list[list[RunRecord]]
    reruns: list[list[RunRecord]]


def load_pairs(url: str) -> list[PairRecords]:
    """Every (problem, optimizer) of the store, read back from the store alone."""
    from .selection import best_setting  # noqa: PLC0415 (selection imports the runner, as this does)

    storage = open_storage(url)
    stages: dict[tuple[str, str], dict[str, optuna.Study]] = {}
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        parsed = parse_study_name(summary.study_name)
        if parsed is not None:
            problem, optimizer, stage = parsed
            stages.setdefault((problem, optimizer), {})[stage] = optuna.load_study(
                study_name=summary.study_name, storage=storage)
    pairs = []
    for (problem, optimizer), studies in sorted(stages.items()):
        if "tune" not in studies:
            continue
        tune = studies["tune"]
        spec = ProblemSpec.from_dict(tune.user_attrs["problem"])
        tuning = [[record_of(t) for t in done_trials(tune)[: tune.user_attrs["budget"]]]]
        chosen = best_setting(spec, tuning)
        reruns: dict[int, RunRecord] = {}
        if chosen is not None and "seeds" in studies:
            wanted = studies["seeds"].user_attrs["budget"]
            for record in map(record_of, done_trials(studies["seeds"])):
                if record.hparams == chosen and record.seed <= wanted:
                    reruns.setdefault(record.seed, record)
        plan = {"trials": tune.user_attrs["budget"], "studies": 1,
                "seeds": studies["seeds"].user_attrs["budget"] if "seeds" in studies else 0}
        pairs.append(PairRecords(spec, optimizer, plan, tuning, [[reruns[s] for s in sorted(reruns)]]))
    return pairs
