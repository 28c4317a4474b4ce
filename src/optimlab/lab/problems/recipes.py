"""Problems with data: models, training losses and held-out metrics, assembled the same way.

`RECIPES` holds the code of each supervised problem of the registry, by name (their specs are
declared, without torch, in `supervised`); `supervised_problem` makes a user's own."""

from __future__ import annotations

import functools

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from . import data
from .base import Problem, ProblemSpec, Task

Batch = tuple[torch.Tensor, ...]
EVAL_SIZE = 2000  # held-out examples used per evaluation, to keep evaluation cheap


@dataclass(frozen=True)
class Recipe:
    """How to train one model on one data set: the parts that differ between supervised problems."""

    splits: Callable[[], data.Splits]
    model: Callable[[], nn.Module]
    loss: Callable[[nn.Module, Batch], torch.Tensor]
    metric: Callable[[nn.Module, Batch], float]
    eval_size: int | None = EVAL_SIZE  # held-out examples judged per evaluation; None for all


def supervised_task(recipe: Recipe, spec: ProblemSpec, seed: int, split: str, full_batch: bool = False) -> Task:
    """Build a task: model initialised from ``seed``; minibatches of ``spec.batch_size`` drawn
    with replacement from ``seed``, or with ``full_batch`` the whole training set every step
    (a fixed subset of ``spec.full_batch_size`` examples drawn from ``seed`` where it is larger)."""
    train, held = recipe.splits().for_split(split)
    held = tuple(t[: recipe.eval_size] for t in held)
    torch.manual_seed(seed)
    model = recipe.model()
    batches = torch.Generator().manual_seed(seed)
    n = len(train[0])
    if full_batch and spec.full_batch_size is not None and n > spec.full_batch_size:
        subset = torch.randperm(n, generator=batches)[: spec.full_batch_size]
        train, n = tuple(t[subset] for t in train), spec.full_batch_size

    def train_loss(step: int) -> torch.Tensor:
        if full_batch:
            return recipe.loss(model, train)
        index = torch.randint(n, (spec.batch_size,), generator=batches)
        return recipe.loss(model, tuple(t[index] for t in train))

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            value = recipe.metric(model, held)
        model.train()
        return value

    return Task(model=model, train_loss=train_loss, evaluate=evaluate)


def supervised_problem(spec: ProblemSpec, recipe: Recipe) -> Problem:
    return Problem(spec=spec, build=functools.partial(supervised_task, recipe, spec))


# ---- shared losses and metrics ----------------------------------------------------------------

def _cross_entropy(model: nn.Module, batch: Batch) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


def _accuracy(model: nn.Module, batch: Batch) -> float:
    x, y = batch
    return (model(x).argmax(-1) == y).float().mean().item()


def _binary_cross_entropy(model: nn.Module, batch: Batch) -> torch.Tensor:
    x, y = batch
    return F.binary_cross_entropy_with_logits(model(x), y)


def _binary_accuracy(model: nn.Module, batch: Batch) -> float:
    x, y = batch
    return ((model(x) > 0).float() == y).float().mean().item()


def _auc(model: nn.Module, batch: Batch) -> float:
    from sklearn.metrics import roc_auc_score

    x, y = batch
    return float(roc_auc_score(y.numpy(), model(x).numpy()))


def with_l2(loss: Callable[[nn.Module, Batch], torch.Tensor], l2: float):
    """The loss plus ``l2 * sum of squared weights`` (matrices and filters; not biases or BN scales)."""
    def regularised(model: nn.Module, batch: Batch) -> torch.Tensor:
        penalty = sum((p**2).sum() for p in model.parameters() if p.dim() > 1)
        return loss(model, batch) + l2 * penalty
    return regularised


# ---- models --------------------------------------------------------------------------------------

class _Logistic(nn.Linear):
    def forward(self, x):
        return super().forward(x).squeeze(-1)


def mlp(inputs: int, hidden: int, outputs: int, batchnorm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width_in in (inputs, hidden):
        layers += [nn.Linear(width_in, hidden)] + ([nn.BatchNorm1d(hidden)] if batchnorm else []) + [nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(hidden, outputs))


def small_cnn(channels: int, size: int, classes: int) -> nn.Sequential:
    """conv-relu-pool twice, then a linear classifier; works for 28x28 and 8x8 images."""
    kernel = 5 if size >= 16 else 3
    features = nn.Sequential(nn.Conv2d(channels, 16, kernel, padding=kernel // 2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(16, 32, kernel, padding=kernel // 2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten())
    flat = features(torch.zeros(1, channels, size, size)).shape[-1]
    return nn.Sequential(*features, nn.Linear(flat, classes))


class CharLSTM(nn.Module):
    def __init__(self, vocabulary: int, embedding: int = 32, hidden: int = 128):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, embedding)
        self.lstm = nn.LSTM(embedding, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocabulary)

    def forward(self, ids):
        out, _ = self.lstm(self.embed(ids))
        return self.head(out)


class FactorisationMachine(nn.Module):
    """Click model over sparse ids: per-id biases plus a user-item embedding dot product."""

    def __init__(self, fields: data.ClickFields, rank: int = 8):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(()))
        self.user_bias = nn.Embedding(fields.n_users, 1)
        self.item_bias = nn.Embedding(fields.n_items, 1)
        self.category_bias = nn.Embedding(fields.n_categories, 1)
        self.users = nn.Embedding(fields.n_users, rank)
        self.items = nn.Embedding(fields.n_items, rank)
        for table in (self.user_bias, self.item_bias, self.category_bias):
            nn.init.zeros_(table.weight)
        for table in (self.users, self.items):
            nn.init.normal_(table.weight, std=0.1)

    def forward(self, ids):
        user, item, category = ids.unbind(-1)
        dot = (self.users(user) * self.items(item)).sum(-1)
        return (self.bias + self.user_bias(user).squeeze(-1) + self.item_bias(item).squeeze(-1)
                + self.category_bias(category).squeeze(-1) + dot)


class _Theta(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.theta = nn.Parameter(torch.ones(dim))


def _quadratic_loss(model: _Theta, batch: Batch) -> torch.Tensor:
    _, hessian = data.noisy_quadratic()
    diff = model.theta - batch[0]
    return 0.5 * ((diff @ hessian) * diff).sum(-1).mean()


def _next_char_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    windows = batch[0]
    logits = model(windows[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))


CHAR_WINDOW = 64


@functools.cache
def _char_windows() -> data.Splits:
    ids, _, _ = data.character_corpus()
    n = len(ids) // (CHAR_WINDOW + 1)
    windows = ids[: n * (CHAR_WINDOW + 1)].reshape(n, CHAR_WINDOW + 1)
    n_test = n // 10
    return data.Splits(train=(windows[:-n_test],), test=(windows[-n_test:],))


# ---- the recipes of the registry's problems, by name ------------------------------------------

def _mlp_mnist1d(batchnorm: bool, l2: float) -> Recipe:
    return Recipe(splits=data.mnist1d, model=lambda: mlp(40, 128, 10, batchnorm),
                  loss=with_l2(_cross_entropy, l2) if l2 else _cross_entropy, metric=_accuracy)


RECIPES: dict[str, Callable[[], Recipe]] = {
    "noisy_quadratic": lambda: Recipe(splits=lambda: data.noisy_quadratic()[0], model=lambda: _Theta(100),
                                      loss=_quadratic_loss, metric=lambda m, b: _quadratic_loss(m, b).item()),
    "logreg_breast_cancer": lambda: Recipe(splits=data.breast_cancer, model=lambda: _Logistic(30, 1),
                                           loss=_binary_cross_entropy, metric=_binary_accuracy),
    **{"mlp_mnist1d" + ("_bn" if batchnorm else "") + ("_l2" if l2 else ""):
       functools.partial(_mlp_mnist1d, batchnorm, l2) for batchnorm in (False, True) for l2 in (0.0, 1e-4)},
    "cnn_fashion_mnist": lambda: Recipe(
        splits=lambda: data.fashion_mnist()[0],
        model=lambda: small_cnn(1, data.fashion_mnist()[0].train[0].shape[-1], 10),
        loss=_cross_entropy, metric=_accuracy),
    "char_lstm_kjv": lambda: Recipe(
        splits=_char_windows, model=lambda: CharLSTM(len(data.character_corpus()[1])),
        loss=_next_char_loss, metric=lambda m, b: _next_char_loss(m, (b[0][:256],)).item()),
    "recommender_clicks": lambda: Recipe(splits=data.synthetic_clicks,
                                         model=lambda: FactorisationMachine(data.ClickFields()),
                                         loss=_binary_cross_entropy, metric=_auc),
}


def registry_task(name: str, spec: ProblemSpec, seed: int, split: str, full_batch: bool = False) -> Task:
    """The task of the registry's supervised problem ``name``."""
    return supervised_task(RECIPES[name](), spec, seed, split, full_batch)
