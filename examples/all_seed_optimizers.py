"""Train the same MLP on the same data with every optimizer of optimlab.optimizers()
and print each one's training loss at a few checkpoints, its final loss and its test
accuracy, as a table.

The learning rates are each catalog entry's ``example_lr``, a common starting point
(torch.optim's default for the adaptive methods; 0.1 for plain SGD, 0.01 for
heavy-ball/Nesterov, whose velocity is ~10x the gradient), not tuned values: the table shows that every optimizer trains, not which is
best. For that, tune each one (see docs/algorithms.md, "How to choose").

"gd" uses the full training set every step; all the others use mini-batches of 64.
"""

import time

import optimlab
from optimlab.catalog import CATALOG
from _common import train

STEPS, BATCH, CHECKPOINTS = 300, 64, (0, 25, 50, 100, 200, 300)


def main() -> None:
    names = list(optimlab.optimizers())
    width = max(map(len, names))
    header = f"{'optimizer':<{width}} {'lr':>6} " + " ".join(f"{'step ' + str(c):>9}" for c in CHECKPOINTS) + f" {'test acc':>8}"
    print(f"Training loss of a 64-64-10 MLP on scikit-learn digits, {STEPS} steps, batch {BATCH} (gd: full batch)\n")
    print(header)
    print("-" * len(header))
    start = time.perf_counter()
    results = {}
    for name in names:
        lr = CATALOG[name].example_lr
        result = train(lambda params: optimlab.create(name, params, lr=lr), steps=STEPS,
                       batch_size=None if name == "gd" else BATCH, log_every=25)
        losses = result["losses"]
        results[name] = losses[STEPS]
        print(f"{name:<{width}} {lr:>6g} " + " ".join(f"{losses[c]:9.4f}" for c in CHECKPOINTS)
              + f" {result['test_accuracy']:8.3f}", flush=True)
    print("-" * len(header))
    ranking = sorted(results, key=results.get)
    print(f"final loss, lowest first: {', '.join(f'{n} {results[n]:.3f}' for n in ranking)}")
    print("(untuned learning rates on one small problem: this is a demo, not a ranking of the methods)")
    print(f"{len(names)} optimizers in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
