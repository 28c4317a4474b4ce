"""A sweep killed with SIGKILL mid-way and re-run completes without redoing or losing trials."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import optuna

from optimlab.lab import store

TRIALS, SEEDS = 6, 3
OPTIMIZERS = ("sgd", "adam")


def _command(out):
    return [sys.executable, "-m", "optimlab.cli", "bench", "--problems", "saddle", "--optimizers", ",".join(OPTIMIZERS),
            "--trials", str(TRIALS), "--seeds", str(SEEDS), "--out", str(out), "--workers", "1"]


def _finished(db):
    """(study, trial number) -> value of every finished trial carrying a run record, read from SQLite."""
    if not db.exists():
        return {}
    con = sqlite3.connect(db, timeout=30)
    try:
        rows = con.execute(
            "SELECT s.study_name, t.number, v.value FROM trials t JOIN studies s ON s.study_id = t.study_id "
            "JOIN trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = 'run' "
            "LEFT JOIN trial_values v ON v.trial_id = t.trial_id "
            "WHERE t.state IN ('COMPLETE', 'FAIL')").fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        rows = []
    finally:
        con.close()
    return {(name, number): value for name, number, value in rows}


def test_sigkill_then_rerun_completes_without_redoing_or_losing(tmp_path):
    db = tmp_path / "optimlab.db"
    process = subprocess.Popen(_command(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(_finished(db)) < 4 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = _finished(db)
    assert 4 <= len(before) < len(OPTIMIZERS) * (TRIALS + SEEDS), "kill should land mid-sweep"

    result = subprocess.run(_command(tmp_path), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    after = _finished(db)
    for key, value in before.items():  # nothing finished is lost or changed
        assert key in after and (after[key] == value or value is None and after[key] is None)
    url = store.default_storage(tmp_path)
    for optimizer in OPTIMIZERS:  # and nothing finished was run again: exactly the budget is done
        tune = optuna.load_study(study_name=f"saddle/{optimizer}/tune", storage=url)
        seeds = optuna.load_study(study_name=f"saddle/{optimizer}/seeds", storage=url)
        assert len(store.done_trials(tune)) == TRIALS
        assert sorted(t.params["seed"] for t in store.done_trials(seeds)) == list(range(1, SEEDS + 1))
        assert not [t for t in tune.trials + seeds.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert (tmp_path / "report.html").exists()


def test_trial_killed_before_its_first_heartbeat_is_requeued(tmp_path):
    """A process killed between creating a trial and its first heartbeat leaves a RUNNING trial
    Optuna never declares stale; the store re-queues it after the grace period."""
    storage = store.open_storage(store.default_storage(tmp_path))
    study = optuna.create_study(storage=storage, study_name="orphan")
    orphan = study.ask()  # RUNNING, and no heartbeat thread ever starts for it
    assert store.pending_trials(study) == (1, 0)  # young: maybe alive, left alone
    deadline = time.time() + 4 * store.GRACE_PERIOD
    while store.pending_trials(study) != (0, 1) and time.time() < deadline:
        time.sleep(0.5)
    assert store.pending_trials(study) == (0, 1)  # failed, and a retry is waiting
    assert study.trials[orphan.number].state == optuna.trial.TrialState.FAIL
