"""The sweep's budget: every study's points (scrambled Halton, common to equal search spaces), each
study's best setting rerun over seeds 1..K, divergence stored, re-runs and extensions exact."""

import math

import pytest

from optimlab.catalog import Hyperparameter
from optimlab.lab import store, sweep
from optimlab.lab.user import Sources

OPTIMIZERS = ("gd", "sgd", "adam")  # gd and sgd share a search space
PLAN = sweep.Plan(trials=4, seeds=2, studies=2)
TIMING = ("time_to_target", "train_time", "mean_step_time", "peak_rss_mb")


def _sweep(url, plan=PLAN, optimizers=OPTIMIZERS, **options):
    ran = []
    sweep.run_pairs(url, sweep.resolve([("saddle", o) for o in optimizers], Sources()), plan,
                    on_run=lambda p, o: ran.append(o), **options)
    return {pair.optimizer: pair for pair in store.load_pairs(url)}, ran


def _content(pairs):
    strip = lambda run: {k: v for k, v in run.to_dict().items() if k not in TIMING}
    return {name: ([[strip(r) for r in s] for s in pair.tuning], [[strip(r) for r in s] for s in pair.reruns])
            for name, pair in pairs.items()}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    url = store.default_storage(tmp_path_factory.mktemp("sweep"))
    pairs, ran = _sweep(url)
    return url, pairs, ran


def test_the_budget_is_met_exactly(swept):
    _, pairs, ran = swept
    assert len(ran) == len(OPTIMIZERS) * PLAN.studies * (PLAN.trials + PLAN.seeds)
    for pair in pairs.values():
        assert [len(study) for study in pair.tuning] == [PLAN.trials] * PLAN.studies
        assert [r.seed for study in pair.tuning for r in study] == [1_000_000 + s for s in range(2) for _ in range(4)]
        assert all(r.split == "validation" for study in pair.tuning for r in study)
        assert pair.plan["trials"] == 4 and pair.plan["studies"] == 2 and pair.plan["meta"]["command"]


def test_each_study_reruns_its_best_setting_over_the_seeds(swept):
    _, pairs, _ = swept
    for pair in pairs.values():
        for study, reruns in zip(pair.tuning, pair.reruns):
            finished = [r for r in study if r.diverged_at is None]
            # the oracle: fewest steps to the target, then the lowest final value, then the earliest point
            best = min(finished, key=lambda r: (r.steps_to_target or math.inf, r.metric[-1], study.index(r)))
            assert [r.seed for r in reruns] == [1, 2]
            assert all(r.hparams == best.hparams and r.split == "test" for r in reruns)


def test_points_are_stratified_halton_on_the_log_scale_and_shared_by_equal_spaces(swept):
    _, pairs, _ = swept
    for name, pair in pairs.items():
        low, high = pair.plan["space"][0]["low"], pair.plan["space"][0]["high"]
        for study in pair.tuning:
            units = sorted(math.log(r.hparams["lr"] / low) / math.log(high / low) for r in study)
            # the first 2^k points of a (scrambled) base-2 van der Corput sequence: one per 2^-k interval
            assert [math.floor(4 * u) for u in units] == [0, 1, 2, 3]
    lrs = lambda name: [[r.hparams for r in s] for s in pairs[name].tuning]
    assert lrs("gd") == lrs("sgd")  # common random numbers: the same space, the same points
    assert lrs("gd")[0] != lrs("gd")[1]  # independent studies
    # and on a 2-D function (no minibatches) gd and sgd are one algorithm: identical runs, label aside
    relabel = lambda runs: [[{**r, "optimizer": "sgd"} for r in s] for s in runs]
    assert tuple(map(relabel, _content(pairs)["gd"])) == _content(pairs)["sgd"]


def test_points_depend_on_the_point_index_only():
    space = (Hyperparameter("lr", 1e-4, 1.0), Hyperparameter("momentum", 0.0, 0.99, log=False))
    short, long = sweep.Plan(trials=3, seeds=1).points(space, 0), sweep.Plan(trials=9, seeds=1).points(space, 0)
    assert long[:3] == short
    assert all(1e-4 <= p["lr"] <= 1.0 and 0.0 <= p["momentum"] <= 0.99 for p in long)


def test_diverged_runs_are_stored_with_their_step_and_count_in_the_budget(swept):
    _, pairs, _ = swept
    diverged = [r for pair in pairs.values() for study in pair.tuning for r in study if r.failed]
    assert diverged, "the searched ranges reach learning rates that blow up on the saddle"
    assert all(r.diverged_at >= 1 and not math.isfinite(r.final_metric) for r in diverged)


def test_rerunning_a_finished_sweep_runs_nothing_and_the_same_command_gives_the_same_runs(tmp_path, swept):
    url, pairs, _ = swept
    assert _sweep(url)[1] == []
    again, _ = _sweep(store.default_storage(tmp_path))
    assert _content(again) == _content(pairs)


def test_extend_adds_to_a_store_as_if_it_had_been_made_with_the_larger_budget(tmp_path, swept):
    _, pairs, _ = swept
    url = store.default_storage(tmp_path)
    small = sweep.Plan(trials=2, seeds=1, studies=1)
    _sweep(url, small)
    with pytest.raises(ValueError, match="store was made with trials 2, seeds 1, studies 1"):
        _sweep(url)
    extended, ran = _sweep(url, extend=True)
    assert len(ran) < len(OPTIMIZERS) * PLAN.studies * (PLAN.trials + PLAN.seeds)  # kept what it had
    assert _content(extended) == _content(pairs)
