"""The sweep's store: three tables in an SQL database (a SQLite file by default, or PostgreSQL).

``optimlab_settings`` holds the budget the store was made with (the plan) and how it was made
(the meta); ``optimlab_pairs`` one row per (problem, optimizer) with the problem's spec and the
searched space; ``optimlab_items`` the pair's whole budget of runs, enqueued once when the pair is
created: every tuning point of every study, then every seed rerun of each study's best setting.

Why it survives what it must:

* Creation is idempotent and race-safe: ``CREATE TABLE IF NOT EXISTS`` (under an advisory lock on
  PostgreSQL, whose catalog races otherwise) and ``INSERT ... ON CONFLICT DO NOTHING``, so any
  number of commands may start at once on a fresh store.
* A worker claims an item with one atomic ``UPDATE`` that sets ``claimed_by`` and a lease on the
  database's clock (machines' clocks need not agree). The lease is renewed while the run goes on;
  an item whose lease ran out (its worker was killed or paused) is claimed again, with the same
  point and seed. A run that raised gives its item back.
* The run record and the item's ``done`` state are written by one statement, so there is no
  moment at which a run is recorded but not done, or done without a record. When two workers
  finish the same item (a paused one woke up after its item was taken over), the first record wins
  and the other is dropped.
* An unreachable database is retried with backoff for ``OPTIMLAB_STORAGE_RETRY_SECONDS`` (60 s),
  then `StorageUnreachable` is raised with one line to show.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import sqlalchemy as sa
from sqlalchemy import exc

from .problems import ProblemSpec
from .runner import RunRecord

SCHEMES = ("sqlite", "postgresql")
#: driver module and the package that installs it, per URL scheme (``postgresql://`` is psycopg 3
#: in SQLAlchemy 2)
DRIVERS = {"sqlite": ("sqlite3", "python's sqlite3"), "postgresql": ("psycopg", "psycopg[binary]"),
           "postgresql+psycopg": ("psycopg", "psycopg[binary]"), "postgresql+psycopg2": ("psycopg2", "psycopg2-binary")}
TUNE, SEED = "tune", "seed"
TODO, CLAIMED, DONE = "todo", "claimed", "done"
SCHEMA_VERSION = "1"
_PG_SCHEMA_LOCK = 0x6F707469  # "opti": serialises schema creation on PostgreSQL


def lease_seconds() -> float:
    """How long a claimed item stays a worker's without renewal (renewed every third of it)."""
    return float(os.environ.get("OPTIMLAB_LEASE_SECONDS", 10))


def retry_seconds() -> float:
    """How long an unreachable database is retried before the command gives up."""
    return float(os.environ.get("OPTIMLAB_STORAGE_RETRY_SECONDS", 60))


class StorageUnreachable(RuntimeError):
    """The database stayed unreachable for `retry_seconds`; the message is the line to show."""


class NotAStore(ValueError):
    """The storage exists but is not an optimlab store one can read."""


metadata = sa.MetaData()
settings = sa.Table("optimlab_settings", metadata,
                    sa.Column("key", sa.String(64), primary_key=True),
                    sa.Column("value", sa.Text, nullable=False))
pairs = sa.Table("optimlab_pairs", metadata,
                 sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                 sa.Column("problem", sa.String(255), nullable=False),
                 sa.Column("optimizer", sa.String(255), nullable=False),
                 sa.Column("spec", sa.Text, nullable=False),
                 sa.Column("space", sa.Text, nullable=False),
                 sa.UniqueConstraint("problem", "optimizer", name="optimlab_pairs_names"))
items = sa.Table("optimlab_items", metadata,
                 sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                 sa.Column("pair_id", sa.Integer, nullable=False),
                 sa.Column("study", sa.Integer, nullable=False),
                 sa.Column("kind", sa.String(8), nullable=False),  # TUNE or SEED
                 sa.Column("number", sa.Integer, nullable=False),  # the point's index, or the rerun's seed
                 sa.Column("hparams", sa.Text),  # the tuning point; NULL for a rerun (its study's best)
                 sa.Column("seed", sa.Integer, nullable=False),
                 sa.Column("state", sa.String(8), nullable=False),
                 sa.Column("claimed_by", sa.String(255)),
                 sa.Column("lease_until", sa.Float),
                 sa.Column("attempts", sa.Integer, nullable=False),
                 sa.Column("record", sa.Text),  # the RunRecord (JSON); NULL for a rerun with nothing to rerun
                 sa.UniqueConstraint("pair_id", "study", "kind", "number", name="optimlab_items_budget"),
                 sa.Index("optimlab_items_state", "pair_id", "state"))


def default_storage(out_dir: str | Path) -> str:
    return f"sqlite:///{Path(out_dir).resolve() / 'optimlab.db'}"


def sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def check_url(url: str) -> None:
    """A ValueError naming the problem with ``url``, before anything is opened or created."""
    scheme = url.split("://", 1)[0] if "://" in url else None
    if scheme is None or scheme.split("+")[0] not in SCHEMES:
        raise ValueError(f"storage must be a sqlite:///FILE or postgresql://USER@HOST/DB URL, got {url!r}")
    if scheme not in DRIVERS:
        raise ValueError(f"storage driver {scheme.split('+', 1)[-1]!r} is not supported, got {url!r}; "
                         f"use one of {', '.join(s + '://' for s in DRIVERS)}")
    if scheme == "sqlite" and (url in ("sqlite://", "sqlite:///", "sqlite:///:memory:") or "mode=memory" in url):
        raise ValueError(f"storage {url!r} is in memory and would lose every run; give a file: sqlite:///FILE")
    module, package = DRIVERS[scheme]
    if importlib.util.find_spec(module) is None:
        raise ValueError(f"storage {url!r} needs the {module} driver: pip install '{package}'")


def _shown(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


@dataclass
class Item:
    """One claimed run of a pair's budget."""

    id: int
    pair_id: int
    study: int
    kind: str
    number: int
    hparams: dict[str, float] | None
    seed: int
    token: str
    record: RunRecord | None  # a record left by an earlier budget (see `Store.prepare`)


def _json(value) -> str:
    return json.dumps(value, sort_keys=True)


def _record(text: str | None) -> RunRecord | None:
    return None if text is None else RunRecord.from_dict(json.loads(text))


class Store:
    """One storage URL. Every method is one short database operation, retried while the
    database is unreachable; nothing is created before `prepare`."""

    def __init__(self, url: str):
        check_url(url)
        self.url = url
        self.path = sqlite_path(url)
        options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT", "pool_pre_ping": True}
        if self.path is not None:
            options["connect_args"] = {"timeout": 60}
        self.engine = sa.create_engine(url, **options)
        if self.path is not None:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sqlite = self.path is not None
        # the database's clock in seconds: leases compare against it, whichever machine writes
        self.now = sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)" if self.sqlite
                                     else "extract(epoch from clock_timestamp())", sa.Float)

    # ---- plumbing ----------------------------------------------------------------------------
    def _retry(self, operation: Callable[[sa.Connection], Any]) -> Any:
        """``operation(connection)``, retried with backoff while the database is unreachable."""
        deadline, delay = None, 0.2
        while True:
            try:
                with self.engine.connect() as connection:
                    return operation(connection)
            except (exc.OperationalError, exc.InterfaceError) as error:
                if self.sqlite and "no such table" in str(error.orig):
                    raise
                now = time.monotonic()
                deadline = deadline or now + retry_seconds()
                if now >= deadline:
                    reason = str(getattr(error, "orig", error)).strip().splitlines()[0]
                    raise StorageUnreachable(f"storage unreachable: {_shown(self.url)}: {reason}; "
                                             f"re-run the same command to resume") from error
                time.sleep(min(delay, deadline - now))
                delay = min(2 * delay, 5.0)
            except exc.DatabaseError as error:  # SQLite: "file is not a database", "malformed"
                raise NotAStore(f"not a readable optimlab store: {self.path or _shown(self.url)} "
                                f"({str(error.orig).strip()})") from error

    def dispose(self) -> None:
        self.engine.dispose()

    # ---- before anything is created ----------------------------------------------------------
    def stored_plan(self) -> dict | None:
        """The plan the store was made with; None for a store not made yet. Creates nothing."""
        if self.path is not None and (not self.path.exists() or self.path.stat().st_size == 0):
            return None

        def read(connection: sa.Connection) -> dict | None:
            if self.sqlite:
                check = connection.exec_driver_sql("PRAGMA quick_check").scalar()
                if check != "ok":
                    raise NotAStore(f"not a readable optimlab store: {self.path} ({check})")
            tables = set(sa.inspect(connection).get_table_names())
            if settings.name not in tables:
                if self.sqlite and tables:
                    raise NotAStore(f"not a readable optimlab store: {self.path} (it holds no optimlab "
                                    f"tables; made by another program or an older optimlab?)")
                return None
            plan = connection.execute(sa.select(settings.c.value).where(settings.c.key == "plan")).scalar()
            return None if plan is None else json.loads(plan)

        return self._retry(read)

    # ---- creating ----------------------------------------------------------------------------
    def prepare(self, plan: dict, meta: dict, budgets: list["PairBudget"], extend: bool = False) -> list[int]:
        """Create what is missing (tables, settings, pairs, their items) and return the pairs' ids.

        A store made with another plan is refused (`check_plan`); with ``extend`` a larger budget
        is added instead, and the pairs' reruns are re-opened, since more tuning points may change
        a study's best setting (a rerun whose setting did not change keeps its record)."""
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

        def create(connection: sa.Connection) -> list[int]:
            self._create_schema(connection)
            self._insert(connection, settings, [{"key": "version", "value": SCHEMA_VERSION},
                                                {"key": "plan", "value": _json(plan)},
                                                {"key": "meta", "value": _json(meta)}])
            stored = json.loads(connection.execute(
                sa.select(settings.c.value).where(settings.c.key == "plan")).scalar())
            reopen = check_plan(stored, plan, extend)
            if stored != plan:
                connection.execute(settings.update().where(settings.c.key == "plan").values(value=_json(plan)))
            ids = [self._pair_id(connection, budget) for budget in budgets]
            self._insert(connection, items, [row for pair_id, budget in zip(ids, budgets)
                                             for row in budget.rows(pair_id)])
            if reopen:
                connection.execute(items.update().where(items.c.pair_id.in_(ids), items.c.kind == SEED)
                                   .values(state=TODO, claimed_by=None, lease_until=None))
            return ids

        return self._retry(create)

    def _create_schema(self, connection: sa.Connection) -> None:
        if self.sqlite:
            # one transaction: a command reading the store meanwhile (`stored_plan`) sees all the
            # tables or none, never some of them as a store made by another program
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                for table in metadata.sorted_tables:
                    connection.execute(sa.schema.CreateTable(table, if_not_exists=True))
                    for index in table.indexes:
                        connection.execute(sa.schema.CreateIndex(index, if_not_exists=True))
            except BaseException:
                connection.exec_driver_sql("ROLLBACK")
                raise
            connection.exec_driver_sql("COMMIT")
            return
        # PostgreSQL's catalog is not race-safe under IF NOT EXISTS alone: one creator at a time
        # (a session lock: a creator that dies releases it with its connection)
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _PG_SCHEMA_LOCK})
        try:
            metadata.create_all(connection, checkfirst=True)
        finally:
            connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_SCHEMA_LOCK})

    def _insert(self, connection: sa.Connection, table: sa.Table, rows: list[dict]) -> None:
        if not rows:
            return
        module = sa.dialects.sqlite if self.sqlite else sa.dialects.postgresql
        for start in range(0, len(rows), 500):
            connection.execute(module.insert(table).on_conflict_do_nothing(), rows[start:start + 500])

    def _pair_id(self, connection: sa.Connection, budget: "PairBudget") -> int:
        spec, space = _json(budget.spec.to_dict()), _json(budget.space)
        self._insert(connection, pairs, [{"problem": budget.spec.name, "optimizer": budget.optimizer,
                                          "spec": spec, "space": space}])
        row = connection.execute(sa.select(pairs.c.id, pairs.c.spec, pairs.c.space).where(
            pairs.c.problem == budget.spec.name, pairs.c.optimizer == budget.optimizer)).one()
        if (row.spec, row.space) != (spec, space):
            what = "problem" if row.spec != spec else "search space"
            raise ValueError(f"store {_shown(self.url)} holds {budget.spec.name}/{budget.optimizer} with another "
                             f"{what}; use another --out or --storage for the changed definition")
        return row.id

    # ---- working -----------------------------------------------------------------------------
    def claim(self, pair_ids: list[int], worker: str) -> Item | None:
        """Take one item of ``pair_ids`` that nobody holds (or whose holder's lease ran out): a
        tuning point, or a rerun whose study's tuning is done. None when none is free now."""
        token = f"{worker}:{os.urandom(6).hex()}"
        pick, other = items.alias("pick"), items.alias("other")

        def free(table):
            return sa.or_(table.c.state == TODO, sa.and_(table.c.state == CLAIMED, table.c.lease_until < self.now))

        tuned = ~sa.exists().where(other.c.pair_id == pick.c.pair_id, other.c.study == pick.c.study,
                                   other.c.kind == TUNE, other.c.state != DONE)
        chosen = (sa.select(pick.c.id).where(pick.c.pair_id.in_(pair_ids), free(pick),
                                             sa.or_(pick.c.kind == TUNE, tuned))
                  .order_by(pick.c.pair_id, pick.c.study, pick.c.kind, pick.c.number).limit(1).scalar_subquery())

        def take(connection: sa.Connection) -> Item | None:
            # the outer condition is checked again on the row itself: two workers that picked the
            # same row cannot both take it (PostgreSQL re-evaluates it after the other's update)
            taken = connection.execute(items.update().where(items.c.id == chosen, free(items)).values(
                state=CLAIMED, claimed_by=token, lease_until=self.now + lease_seconds(),
                attempts=items.c.attempts + 1)).rowcount
            if not taken:
                return None
            row = connection.execute(sa.select(items).where(items.c.claimed_by == token)).one()
            return Item(row.id, row.pair_id, row.study, row.kind, row.number,
                        None if row.hparams is None else json.loads(row.hparams), row.seed, token, _record(row.record))

        return self._retry(take)

    def renew(self, item: Item) -> bool:
        """Extend the item's lease; False when it is no longer this worker's."""
        return bool(self._retry(lambda connection: connection.execute(
            items.update().where(items.c.id == item.id, items.c.claimed_by == item.token, items.c.state == CLAIMED)
            .values(lease_until=self.now + lease_seconds())).rowcount))

    @contextlib.contextmanager
    def holding(self, item: Item) -> Iterator[None]:
        """Renew the item's lease in the background while the body runs."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(lease_seconds() / 3):
                try:
                    if not self.renew(item):
                        return  # taken over: the first record will win
                except (StorageUnreachable, NotAStore):
                    return  # the worker's own next statement reports it

        thread = threading.Thread(target=beat, daemon=True, name=f"lease-{item.id}")
        thread.start()
        try:
            yield
        finally:
            stop.set()

    def finish(self, item: Item, record: RunRecord | None) -> bool:
        """Record the run and mark its item done, in one statement; False when another worker's
        record of the same item came first (this one is then dropped)."""
        text = None if record is None else _json(record.to_dict())
        return bool(self._retry(lambda connection: connection.execute(
            items.update().where(items.c.id == item.id, items.c.state == CLAIMED)
            .values(state=DONE, record=text, claimed_by=None, lease_until=None)).rowcount))

    def release(self, item: Item) -> None:
        """Give the item back at once (its run raised, or the worker was stopped)."""
        self._retry(lambda connection: connection.execute(
            items.update().where(items.c.id == item.id, items.c.claimed_by == item.token, items.c.state == CLAIMED)
            .values(state=TODO, claimed_by=None, lease_until=None)))

    def tuning_records(self, pair_id: int, study: int) -> list[RunRecord]:
        """A study's finished tuning runs in point order."""
        rows = self._retry(lambda connection: connection.execute(
            sa.select(items.c.record).where(items.c.pair_id == pair_id, items.c.study == study,
                                            items.c.kind == TUNE, items.c.state == DONE)
            .order_by(items.c.number)).scalars().all())
        return [_record(text) for text in rows]

    def progress(self, pair_ids: list[int]) -> tuple[int, int]:
        """(done, total) items of the pairs."""
        done = sa.func.sum(sa.case((items.c.state == DONE, 1), else_=0))
        row = self._retry(lambda connection: connection.execute(
            sa.select(sa.func.coalesce(done, 0), sa.func.count()).where(items.c.pair_id.in_(pair_ids))).one())
        return int(row[0]), int(row[1])

    def finished_count(self) -> int:
        """Finished items of the whole store: what a report of it was made from."""
        return int(self._retry(lambda connection: connection.execute(
            sa.select(sa.func.count()).where(items.c.state == DONE)).scalar()))

    def pair_ids(self, names: list[tuple[str, str]]) -> list[int]:
        found = self._retry(lambda connection: {(r.problem, r.optimizer): r.id for r in connection.execute(
            sa.select(pairs.c.id, pairs.c.problem, pairs.c.optimizer))})
        return [found[name] for name in names]

    # ---- reading back ------------------------------------------------------------------------
    def load_pairs(self) -> list["PairRecords"]:
        from .selection import chosen_setting  # noqa: PLC0415 (selection imports the runner, as this does)

        if self.stored_plan() is None:
            return []

        def read(connection: sa.Connection):
            setting = dict(connection.execute(sa.select(settings.c.key, settings.c.value)).all())
            rows = connection.execute(sa.select(items.c.pair_id, items.c.study, items.c.kind, items.c.record)
                                      .where(items.c.state == DONE, items.c.record.is_not(None))
                                      .order_by(items.c.pair_id, items.c.study, items.c.kind, items.c.number)).all()
            return setting, connection.execute(sa.select(pairs).order_by(pairs.c.problem, pairs.c.optimizer)).all(), rows

        setting, pair_rows, rows = self._retry(read)
        plan = {**json.loads(setting["plan"]), "meta": json.loads(setting.get("meta", "{}"))}
        by_pair: dict[int, dict[tuple[int, str], list[RunRecord]]] = {}
        for row in rows:
            by_pair.setdefault(row.pair_id, {}).setdefault((row.study, row.kind), []).append(_record(row.record))
        loaded = []
        for pair in pair_rows:
            spec, runs = ProblemSpec.from_dict(json.loads(pair.spec)), by_pair.get(pair.id, {})
            space = json.loads(pair.space)
            tuning = [runs.get((study, TUNE), []) for study in range(plan["studies"])]
            reruns = []
            for study, study_runs in enumerate(tuning):
                chosen = chosen_setting(spec, space, study_runs)
                reruns.append([r for r in runs.get((study, SEED), []) if chosen is not None and r.hparams == chosen])
            loaded.append(PairRecords(spec, pair.optimizer, {**plan, "space": space}, tuning, reruns))
        return loaded


def _sqlite_pragmas(connection, _record) -> None:
    # WAL: readers never block the writer; NORMAL sync is durable at every commit in WAL mode
    # except against power loss, which a re-run repairs (the item is simply run again)
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def check_plan(stored: dict | None, plan: dict, extend: bool) -> bool:
    """Refuse a plan that is not the store's, unless ``extend`` asks for a larger one. Returns
    whether the reruns must be re-opened (more tuning points per study)."""
    if stored is None or stored == plan:
        return False
    shown = lambda p: ", ".join([*(f"{k} {p.get(k)}" for k in ("trials", "seeds", "studies", "sampler", "sampler_seed")),
                                 *(["lr_find"] if p.get("lr_find") else [])])
    if not extend:
        raise ValueError(f"store was made with {shown(stored)}, not {shown(plan)}; repeat its budget, "
                         f"or pass --extend to add to it, or use another --out")
    fixed = [k for k in ("sampler", "sampler_seed", "lr_find") if stored.get(k) != plan.get(k)]
    smaller = [k for k in ("trials", "seeds", "studies") if plan[k] < stored[k]]
    if fixed or smaller:
        raise ValueError(f"--extend can only add trials, seeds or studies to the store's {shown(stored)}, "
                         f"got {shown(plan)}")
    return plan["trials"] > stored["trials"]


@dataclass
class PairBudget:
    """What `Store.prepare` enqueues for one pair: ``points[s]`` study ``s``'s tuning points."""

    spec: ProblemSpec
    optimizer: str
    space: list[dict]
    points: list[list[dict[str, float]]]
    tuning_seeds: list[int]
    rerun_seeds: tuple[int, ...]

    def rows(self, pair_id: int) -> list[dict]:
        base = {"pair_id": pair_id, "state": TODO, "attempts": 0, "claimed_by": None, "lease_until": None,
                "record": None}
        rows = [{**base, "study": s, "kind": TUNE, "number": k, "hparams": _json(point), "seed": self.tuning_seeds[s]}
                for s, study in enumerate(self.points) for k, point in enumerate(study)]
        return rows + [{**base, "study": s, "kind": SEED, "number": seed, "hparams": None, "seed": seed}
                       for s in range(len(self.points)) for seed in self.rerun_seeds]


@dataclass
class PairRecords:
    """Everything the store holds of one (problem, optimizer): what the verdict is built from.

    ``tuning[s]`` is study ``s``'s finished tuning runs in point order; ``reruns[s]`` the
    finished seed reruns of study ``s``'s best setting, by seed; ``plan`` the budget the sweep
    ran with (``trials``, ``seeds``, ``studies``, ``sampler``, ``sampler_seed``), the pair's
    searched ``space`` and the store's ``meta`` (command, versions, machine, start time).
    """

    spec: ProblemSpec
    optimizer: str
    plan: dict
    tuning: list[list[RunRecord]]
    reruns: list[list[RunRecord]]


def load_pairs(url: str) -> list[PairRecords]:
    """Every (problem, optimizer) of the store, read back from the store alone."""
    store = Store(url)
    try:
        return store.load_pairs()
    finally:
        store.dispose()
