"""Machine-readable results: OUT/results.json (everything the verdict rests on, every run) and
OUT/results.csv (one row per problem and optimizer, the report's tables). Schema in docs/lab.md."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from .advice import flags, recommendation, self_tuning
from .files import atomic_write_text
from .results import OptimizerResult, ProblemResult, Results
from .runner import RunRecord

SCHEMA_VERSION = 1
CSV_COLUMNS = ("problem", "rank", "optimizer", "hparams", "steps_to_target", "steps_low", "steps_high",
               "seeds", "seeds_held", "seeds_touched", "final_metric", "final_low", "final_high",
               "step_cost", "mean_step_time", "state_mb", "diverged_tuning", "tuning_runs", "untuned", "fragile", "flags")


def _finite(value: float | None) -> float | int | None:
    """JSON has no inf or NaN: both become null; whole numbers (steps) stay integers."""
    if value is None or not math.isfinite(value):
        return None
    return int(value) if isinstance(value, int) or float(value).is_integer() and abs(value) < 2**53 else value


def _standing(result: OptimizerResult, rank: int) -> dict:
    return {
        "optimizer": result.optimizer, "rank": rank, "hparams": result.best_hparams,
        "steps_to_target": _finite(result.steps_to_target),
        "steps_interval": [_finite(v) for v in result.steps_interval] if result.tier == 0 else None,
        "seeds": result.seeds, "seeds_held": result.seeds_held, "seeds_touched": result.seeds_touched,
        "diverged_reruns": result.diverged_reruns,
        "final_metric": _finite(result.final_median), "final_interval": [_finite(v) for v in result.final_interval],
        "optimizer_flops": result.optimizer_flops, "model_flops": result.model_flops,
        "step_cost": result.step_cost, "mean_step_time": _finite(result.mean_step_time),
        "state_mb": _finite(result.state_mb), "diverged_tuning": result.diverged_tuning,
        "tuning_runs": len(result.tuning), "untuned": result.untuned, "fragile": result.fragile, "edges": result.edges, "flags": flags(result),
    }


def _run(result: OptimizerResult, run: RunRecord, phase: str, study: int | None) -> dict:
    return {
        "optimizer": result.optimizer, "phase": phase, "study": study, "hparams": run.hparams, "seed": run.seed,
        "split": run.split, "diverged": run.failed, "diverged_at": run.diverged_at,
        "final_metric": _finite(run.final_metric), "steps_to_target": run.steps_to_target,
        "held_target": result.held(run), "initial_loss": _finite(run.initial_loss),
        "mean_step_time": run.mean_step_time, "state_mb": run.state_mb,
        "optimizer_flops": run.optimizer_flops, "model_flops": run.model_flops,
    }


def problem_json(problem: ProblemResult) -> dict:
    ranks = problem.ranks()
    chosen = problem.recommended()
    groups = problem.groups()
    runs = []
    for result in problem.optimizers.values():
        runs += [_run(result, run, "tune", study) for study, study_runs in enumerate(result.studies) for run in study_runs]
        runs += [_run(result, run, "seed", None) for run in result.reruns]
    return {
        "spec": problem.spec.to_dict(),
        "ranking": [_standing(result, ranks[result.optimizer]) for result in problem.ranking()],
        "recommendation": {
            "optimizer": chosen.optimizer if chosen else None,
            "group": [r.optimizer for r in groups[0]] if groups else [],
            "text": recommendation(problem).replace("**", ""),
        },
        "self_tuning": (self_tuning(problem) or "").replace("**", "") or None,
        "runs": runs,
    }


def results_json(results: Results) -> dict:
    return {
        "schema": SCHEMA_VERSION,
        "meta": results.plan,
        "leaderboard": [{"optimizer": row.optimizer, "score": row.score, "wins": row.wins,
                         "median_rank": row.median_rank, "problems": row.problems} for row in results.leaderboard()],
        "problems": {name: problem_json(problem) for name, problem in results.problems.items()},
    }


def results_csv(document: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for name, problem in document["problems"].items():
        for row in problem["ranking"]:
            steps = row["steps_interval"] or [None, None]
            writer.writerow("" if value is None else value for value in [name, row["rank"], row["optimizer"], json.dumps(row["hparams"]), row["steps_to_target"],
                             *steps, row["seeds"], row["seeds_held"], row["seeds_touched"], row["final_metric"],
                             *row["final_interval"], row["step_cost"], row["mean_step_time"], row["state_mb"],
                             row["diverged_tuning"], row["tuning_runs"], row["untuned"], row["fragile"],
                             "; ".join(row["flags"])])
    return buffer.getvalue()


def write(results: Results, out: Path) -> dict[str, Path]:
    document = results_json(results)
    paths = {"json": out / "results.json", "csv": out / "results.csv"}
    atomic_write_text(paths["json"], json.dumps(document, indent=1, allow_nan=False) + "\n")
    atomic_write_text(paths["csv"], results_csv(document))
    return paths
