"""Kills, pauses, signals and simultaneous starts on SQLite: the store ends with exactly the runs
of an uninterrupted one-process sweep (the `reference` fixture), each budget item done once."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from sweeping import (OPTIMIZERS, PROBLEM, STUDIES, TOTAL, bench, deterministic, done_count, environment, start,
                      wait_until)

from optimlab.lab import store, sweep
from optimlab.lab.optimizers import from_catalog
from optimlab.lab.problems import get_problem


def _items(db, timeout: float = 30) -> list[tuple]:
    """The store's items; none while the command that makes the store has not made its tables."""
    con = sqlite3.connect(db, timeout=timeout)
    try:
        return con.execute("SELECT id, state, claimed_by, attempts FROM optimlab_items ORDER BY id").fetchall()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return []
        raise
    finally:
        con.close()


def _assert_complete(url, db, reference):
    assert deterministic(url) == reference
    items = _items(db)
    assert len(items) == TOTAL and all(state == "done" for _, state, _, _ in items)


def _finish(command, **env) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment(**env))
    assert result.returncode == 0, result.stderr
    return result


def test_sigkill_mid_sweep_then_rerun_equals_the_uninterrupted_sweep(tmp_path, reference):
    db = tmp_path / "optimlab.db"
    url = f"sqlite:///{db}"
    process = start(bench(url, tmp_path, "--workers", "1"))
    wait_until(lambda: done_count(url) >= 3 or process.poll() is not None)
    process.kill()
    process.wait()
    assert 3 <= done_count(url) < TOTAL, "the kill should land mid-sweep"
    _finish(bench(url, tmp_path, "--workers", "1"))
    _assert_complete(url, db, reference)
    assert sum(attempts for *_, attempts in _items(db)) <= TOTAL + 1  # only the killed run was run again


# A worker killed just before or just after the one statement that stores a run and marks it done.
KILLED_AT_FINISH = """
import os, signal, sys
from optimlab.lab import store, sweep
from optimlab.lab.user import Sources
finish, when, after = store.Store.finish, sys.argv[2], int(sys.argv[3])
calls = []
def killing_finish(self, item, record):
    calls.append(1)
    if when == "before" and len(calls) > after:
        os.kill(os.getpid(), signal.SIGKILL)
    stored = finish(self, item, record)
    if when == "after" and len(calls) > after:
        os.kill(os.getpid(), signal.SIGKILL)
    return stored
store.Store.finish = killing_finish
names = [("saddle", o) for o in ("sgd", "adam")]
sweep.run_pairs(sys.argv[1], sweep.resolve(names, Sources()), sweep.Plan(trials=3, seeds=2, studies=2))
"""


@pytest.mark.parametrize("when", [pytest.param("before", marks=pytest.mark.slow), "after"])
def test_a_kill_at_the_write_of_a_run_leaves_no_wrong_answer(tmp_path, reference, when):
    db = tmp_path / "optimlab.db"
    url = f"sqlite:///{db}"
    after = 3 if when == "before" else 2  # a tuning run of the first study, then the last one of it
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_FINISH, url, when, str(after)], env=environment(),
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert done_count(url) == (after if when == "before" else after + 1)
    # the killed worker's item is claimed until its lease ends; a short lease keeps the test short
    _finish(bench(url, tmp_path, "--workers", "1"), OPTIMLAB_LEASE_SECONDS=1)
    _assert_complete(url, db, reference)


def test_a_store_being_made_is_never_seen_half_made(tmp_path):
    """A second command that reads the store while the first is creating its tables sees either
    no store or a whole one: the tables are one transaction."""
    url = f"sqlite:///{tmp_path / 'optimlab.db'}"
    maker, reader = store.Store(url), store.Store(url)
    seen = []

    def read_after(connection, cursor, statement, *_):
        if statement.lstrip().upper().startswith("CREATE"):
            seen.append(reader.stored_plan())

    sa.event.listen(maker.engine, "after_cursor_execute", read_after)
    try:
        sweep.prepare(maker, [(get_problem(PROBLEM), from_catalog("sgd"))], sweep.Plan(trials=3, seeds=2), False,
                      "test")
        assert seen and seen == [None] * len(seen)  # each read before the commit: no store yet, not an error
        assert reader.stored_plan() == sweep.Plan(trials=3, seeds=2).to_dict()
    finally:
        maker.dispose()
        reader.dispose()


@pytest.mark.slow
def test_simultaneous_starts_on_a_fresh_store_all_succeed_and_split_the_budget(tmp_path, reference):
    db = tmp_path / "optimlab.db"
    url = f"sqlite:///{db}"
    processes = [start(bench(url, tmp_path / f"out{i}", "--workers", "1")) for i in range(4)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    assert [code for code, _ in results] == [0] * 4, results
    _assert_complete(url, db, reference)
    assert sum(attempts for *_, attempts in _items(db)) == TOTAL  # no run was run twice


@pytest.mark.slow
def test_a_worker_paused_past_its_lease_yields_cleanly(tmp_path, reference):
    db = tmp_path / "optimlab.db"
    url = f"sqlite:///{db}"
    lease = {"OPTIMLAB_LEASE_SECONDS": 1}
    paused = start(bench(url, tmp_path / "a", "--workers", "1"), **lease)

    def stopped_holding_an_item():
        os.kill(paused.pid, signal.SIGSTOP)
        try:
            items = _items(db, timeout=0.5) if db.exists() else []
        except sqlite3.OperationalError as error:  # stopped inside a write: it holds the file's lock
            if "locked" not in str(error):
                raise
            items = []
        held = [i for i in items if i[1] == "claimed" and f":{paused.pid}:" in (i[2] or "")]
        if not held:
            os.kill(paused.pid, signal.SIGCONT)
        return held

    held = wait_until(stopped_holding_an_item, every=0.02)[0]
    other = start(bench(url, tmp_path / "b", "--workers", "1"), **lease)
    wait_until(lambda: _items(db)[held[0] - 1][3] >= 2 or other.poll() is not None)  # taken over
    time.sleep(1)
    os.kill(paused.pid, signal.SIGCONT)
    for process in (paused, other):
        assert process.wait(timeout=300) == 0, process.stderr.read()
    _assert_complete(url, db, reference)
    assert _items(db)[held[0] - 1][3] >= 2


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as file:
        return [int(child) for child in file.read().split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _one_process_sweep(url: str, trials: int, seeds: int) -> dict:
    """The deterministic content of an uninterrupted one-process sweep of this budget."""
    from optimlab.lab import sweep
    from optimlab.lab.user import Sources

    sweep.run_pairs(url, sweep.resolve([(PROBLEM, o) for o in OPTIMIZERS], Sources()),
                    sweep.Plan(trials, seeds, studies=STUDIES))
    return deterministic(url)


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_every_worker_within_5_s_with_one_line(tmp_path, signum, code):
    # 108 runs (~4 s on 2 idle cores): the signal lands mid-sweep even when this machine is
    # so busy that the polling below lags by seconds (20 runs once ended before it).
    trials, seeds = 24, 3
    expected = _one_process_sweep(f"sqlite:///{tmp_path / 'reference.db'}", trials, seeds)
    url = f"sqlite:///{tmp_path / 'optimlab.db'}"
    process = start(bench(url, tmp_path, "--workers", "2", trials=trials, seeds=seeds))
    wait_until(lambda: done_count(url) >= 2 or process.poll() is not None)
    workers = _children(process.pid)
    assert process.poll() is None and len(workers) >= 2
    assert done_count(url) < 100, "the sweep was nearly over before the signal"
    process.send_signal(signum)
    sent = time.monotonic()
    assert process.wait(timeout=10) == code
    wait_until(lambda: not any(map(_alive, workers)), timeout=5)
    assert time.monotonic() - sent < 5
    stderr = process.stderr.read()
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].endswith(
        f"runs finished and stored; re-run the same command to resume")
    assert stderr.strip().splitlines()[-1].startswith("interrupted: ")
    _finish(bench(url, tmp_path, "--workers", "1", trials=trials, seeds=seeds))
    assert deterministic(url) == expected


@pytest.mark.slow
def test_sigkill_soak_ends_with_the_uninterrupted_result(tmp_path):
    """At least 20 SIGKILLs of a whole command (main process and workers) at random moments."""
    # 396 runs, ~15 s of work on 2 cores: many more than 20 kills' worth at 1-3 s each
    # (a command's start-up takes ~1.5 s of that), so the soak ends by its kills, not the sweep.
    trials, seeds = 96, 3
    expected = _one_process_sweep(f"sqlite:///{tmp_path / 'reference.db'}", trials, seeds)
    url = f"sqlite:///{tmp_path / 'optimlab.db'}"
    command = bench(url, tmp_path, "--workers", "2", trials=trials, seeds=seeds)
    generator, kills = random.Random(0), 0
    while kills < 20:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env=environment(OPTIMLAB_LEASE_SECONDS=1), start_new_session=True)
        try:
            process.wait(timeout=generator.uniform(1.0, 3.0))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            kills += 1
            continue
        break  # finished before the kill: the soak is over
    assert kills >= 20
    _finish(command, OPTIMLAB_LEASE_SECONDS=1)
    assert deterministic(url) == expected
    assert all(state == "done" for _, state, _, _ in _items(tmp_path / "optimlab.db"))
