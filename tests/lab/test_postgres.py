"""Sweeps against a real PostgreSQL: several commands at once with a kill, and an outage. Each
ends with exactly the runs of an uninterrupted one-process SQLite sweep (the `reference`).

The server is a throwaway cluster started here from Debian's ``postgresql`` binaries, or the
one at OPTIMLAB_TEST_POSTGRES_URL. Without either the tests skip, except under CI=true, where
they fail: CI (.ci/run) installs the server, so a skip there would hide a broken promise."""

import importlib.util
import os
import signal
import subprocess
import time

import pytest
from postgres_server import Cluster, fresh_database
from sweeping import TOTAL, bench, deterministic, done_count, environment, start, wait_until

from optimlab.lab import store


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, where the PostgreSQL tests must run")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server():
    if importlib.util.find_spec("psycopg") is None:
        _unavailable("the psycopg driver is not installed (pip install 'optimlab[lab]')")
    url, cluster = os.environ.get("OPTIMLAB_TEST_POSTGRES_URL"), None
    if not url:
        try:
            cluster = Cluster()
        except (RuntimeError, OSError, subprocess.SubprocessError) as error:
            _unavailable(f"no PostgreSQL server could be started: {error}")
        url = cluster.url
    yield url, cluster
    if cluster is not None:
        cluster.remove()


def _items(url):
    opened = store.Store(url)
    try:
        with opened.engine.connect() as connection:
            return connection.execute(store.items.select().order_by(store.items.c.id)).all()
    finally:
        opened.dispose()


def test_a_one_process_sweep_on_postgresql_equals_sqlite(server, reference, tmp_path):
    url = fresh_database(server[0])
    result = subprocess.run(bench(url, tmp_path, "--workers", "1"), capture_output=True, text=True, timeout=300,
                            env=environment())
    assert result.returncode == 0, result.stderr
    assert deterministic(url) == reference


@pytest.mark.slow
def test_three_commands_at_once_one_killed_and_rerun_equal_the_one_process_sweep(server, reference, tmp_path):
    url = fresh_database(server[0])
    commands = [bench(url, tmp_path / f"out{i}", "--workers", "2") for i in range(3)]
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=environment(OPTIMLAB_LEASE_SECONDS=2), start_new_session=True)
                 for c in commands]
    wait_until(lambda: done_count(url) >= 4 or processes[0].poll() is not None, timeout=300)
    os.killpg(processes[0].pid, signal.SIGKILL)  # the command and its workers
    processes[0].wait()
    for process in processes[1:]:
        assert process.wait(timeout=300) == 0, process.stderr.read()
    rerun = subprocess.run(commands[0], capture_output=True, text=True, timeout=300,
                           env=environment(OPTIMLAB_LEASE_SECONDS=2))
    assert rerun.returncode == 0, rerun.stderr
    assert deterministic(url) == reference
    rows = _items(url)
    assert len(rows) == TOTAL and {row.state for row in rows} == {"done"}
    assert sum(row.attempts for row in rows) <= TOTAL + 2  # at most the killed workers' runs again


@pytest.mark.slow
def test_an_outage_is_retried_then_ends_with_one_line_and_a_rerun_resumes(server, reference, tmp_path):
    url, cluster = server
    if cluster is None:
        pytest.skip("the outage test stops the server: it needs the cluster started here")
    url = fresh_database(url)
    process = start(bench(url, tmp_path, "--workers", "1"), OPTIMLAB_STORAGE_RETRY_SECONDS=3)
    wait_until(lambda: done_count(url) >= 2 or process.poll() is not None, timeout=300)
    cluster.stop()
    stopped = time.monotonic()
    try:
        assert process.wait(timeout=120) == 1
        waited = time.monotonic() - stopped
    finally:
        cluster.start()
    stderr = process.stderr.read()
    last = stderr.strip().splitlines()[-1]
    assert "Traceback" not in stderr, stderr
    assert last.startswith(f"storage unreachable: {url}: ") and last.endswith("; re-run the same command to resume")
    assert waited >= 3  # it retried for the documented time before giving up
    rerun = subprocess.run(bench(url, tmp_path, "--workers", "1"), capture_output=True, text=True, timeout=300,
                           env=environment(OPTIMLAB_LEASE_SECONDS=1))
    assert rerun.returncode == 0, rerun.stderr
    assert deterministic(url) == reference
