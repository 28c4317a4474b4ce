"""A problem and optimizer configurations of your own, for the lab's CLI.

    optimlab bench --problem-file examples/lab_user_problem.py \
                   --optimizer-file examples/lab_user_problem.py --optimizers adam,adamw_wd0.1,sgd \
                   --trials 4 --seeds 2 --out runs/mine

The file defines PROBLEMS (each from `optimlab.lab.define_problem`, the built-in problems'
contract: model, data, loss, metric, target, budget) and OPTIMIZERS ({label: (factory, search
space)}). The lab imports it again in each worker process, so build data deterministically.
"""

import torch
from torch.nn import functional as F

import optimlab
from optimlab.lab import define_problem

generator = torch.Generator().manual_seed(0)
x = torch.randn(2000, 16, generator=generator)
labels = (x[:, :4].sum(1) > 0).long() + (x[:, 4:8].sum(1) > 0).long()  # three classes


def accuracy(model, batch):
    inputs, targets = batch
    return (model(inputs).argmax(-1) == targets).float().mean().item()


PROBLEMS = [
    define_problem(
        "three_class_mlp",
        model_fn=lambda: torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3)),
        loss_fn=lambda model, batch: F.cross_entropy(model(batch[0]), batch[1]),
        train_data=(x[:1600], labels[:1600]),
        eval_fn=accuracy,
        eval_data=(x[1600:], labels[1600:]),
        steps=300, batch_size=32, metric="accuracy", higher_is_better=True, target=0.85,
        description="MLP 16-32-3 on a synthetic three-class problem",
    ),
]

OPTIMIZERS = {
    "adamw_wd0.1": (lambda params, lr: optimlab.AdamW(params, lr=lr, weight_decay=0.1), {"lr": (1e-5, 1.0)}),
}
