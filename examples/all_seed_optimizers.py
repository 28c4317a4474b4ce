"""Train the same MLP on the same data with every optimizer of optimlab.optimizers()
and print each one's training loss at a few checkpoints, its final loss and its test
accuracy, as a table.

The learning rates are common starting points (torch.optim's default for the adaptive
methods; 0.1 for plain SGD, 0.01 for heavy-ball/Nesterov, whose velocity is ~10x the
gradient), not tuned values: the table shows that every optimizer trains, not which is
best. For that, tune each one (see docs/algorithms.md, "How to choose").

"gd" uses the full training set every step; all the others use mini-batches of 64.
"""

import time

import optimlab
from _common import train

STEPS, BATCH, CHECKPOINTS = 300, 64, (0, 25, 50, 100, 200, 300)
LEARNING_RATES = {
    "gd": 0.1, "sgd": 0.1, "momentum": 0.01, "ema_momentum": 0.1, "nesterov": 0.01,
    "adagrad": 1e-2, "adadelta": 1.0, "rmsprop": 1e-3, "rmsprop_centered": 1e-3,
    "adam": 1e-3, "adamw": 1e-3, "amsgrad": 1e-3, "adamax": 2e-3, "nadam": 2e-3, "radam": 1e-3, "lion": 3e-4,
    "adafactor": 1e-2, "muon": 0.02,
}


def main() -> None:
    names = list(optimlab.optimizers())
    header = f"{'optimizer':<17} {'lr':>6} " + " ".join(f"{'step ' + str(c):>9}" for c in CHECKPOINTS) + f" {'test acc':>8}"
    print(f"Training loss of a 64-64-10 MLP on scikit-learn digits, {STEPS} steps, batch {BATCH} (gd: full batch)\n")
    print(header)
    print("-" * len(header))
    start = time.perf_counter()
    results = {}
    for name in names:
        lr = LEARNING_RATES.get(name, 1e-3)
        result = train(lambda params: optimlab.create(name, params, lr=lr), steps=STEPS,
                       batch_size=None if name == "gd" else BATCH, log_every=25)
        losses = result["losses"]
        results[name] = losses[STEPS]
        print(f"{name:<17} {lr:>6g} " + " ".join(f"{losses[c]:9.4f}" for c in CHECKPOINTS)
              + f" {result['test_accuracy']:8.3f}", flush=True)
    print("-" * len(header))
    ranking = sorted(results, key=results.get)
    print(f"final loss, lowest first: {', '.join(f'{n} {results[n]:.3f}' for n in ranking)}")
    print("(untuned learning rates on one small problem: this is a demo, not a ranking of the methods)")
    print(f"{len(names)} optimizers in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
