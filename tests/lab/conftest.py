import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """The deterministic content of an uninterrupted one-process SQLite sweep (see `sweeping`)."""
    from sweeping import OPTIMIZERS, PROBLEM, SEEDS, STUDIES, TRIALS, deterministic

    from optimlab.lab import sweep
    from optimlab.lab.user import Sources

    url = f"sqlite:///{tmp_path_factory.mktemp('reference') / 'optimlab.db'}"
    plan = sweep.Plan(trials=TRIALS, seeds=SEEDS, studies=STUDIES)
    sweep.run_pairs(url, sweep.resolve([(PROBLEM, o) for o in OPTIMIZERS], Sources()), plan)
    return deterministic(url)
