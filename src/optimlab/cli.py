"""The ``optimlab`` command: list optimizers and problems, run a benchmark sweep, write the report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="optimlab: compare optimizers on real problems, fairly, with plots and a report.",
                  no_args_is_help=True, add_completion=False)

DEFAULT_OUT = Path("optimlab-out")


def _names(values: list[str] | None) -> list[str]:
    """Accept repeated options and comma-separated lists alike."""
    return [name.strip() for value in values or [] for name in value.split(",") if name.strip()]


@app.command("list")
def list_command() -> None:
    """List the optimizers, problems and suites, with one-line descriptions."""
    import optimlab
    from rich.console import Console
    from rich.table import Table

    from optimlab.lab.problems import PROBLEMS, SUITES

    console = Console()
    optimizers = Table("optimizer", "description", title="Optimizers")
    for name, description in optimlab.optimizers().items():
        optimizers.add_row(name, description)
    problems = Table("problem", "description", "target", "steps", title="Problems")
    for name, problem in PROBLEMS.items():
        spec = problem.spec
        target = f"{spec.metric} {'>=' if spec.higher_is_better else '<='} {spec.target:g}"
        problems.add_row(name, spec.description, target, str(spec.steps))
    suites = Table("suite", "problems", title="Suites")
    for name, suite in SUITES.items():
        suites.add_row(name, f"{', '.join(suite.problems)} ({suite.trials} trials, {suite.seeds} seeds)")
    for table in (optimizers, problems, suites):
        console.print(table)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command()
def bench(
    problems: Annotated[Optional[list[str]], typer.Option(help="Problems, comma-separated or repeated.")] = None,
    optimizers: Annotated[Optional[list[str]], typer.Option(help="Optimizers (default: all).")] = None,
    suite: Annotated[Optional[str], typer.Option(help="Named problem suite, used when --problems is not given.")] = None,
    trials: Annotated[Optional[int], typer.Option(help="Tuning trials per (problem, optimizer) [default: the suite's].")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="Seeds the best setting is rerun with [default: the suite's].")] = None,
    storage: Annotated[Optional[str], typer.Option(help="Optuna RDB URL (default sqlite:///OUT/optimlab.db).")] = None,
    out: Annotated[Path, typer.Option(help="Output directory for the store and the report.")] = DEFAULT_OUT,
    sampler: Annotated[str, typer.Option(help="Tuning sampler: qmc or tpe.")] = "qmc",
    workers: Annotated[int, typer.Option(help="Worker processes on this machine.")] = min(os.cpu_count() or 1, 2),
) -> None:
    """Tune and rerun every optimizer on every problem, then write the report. Re-run to resume."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    from optimlab.lab.report import report_from_store
    from optimlab.lab import store, sweep
    from optimlab.lab.optimizers import check_optimizers, from_catalog, optimizer_names
    from optimlab.lab.problems import get_problem, get_suite

    try:
        chosen_suite = get_suite(suite or "quick")
        problem_names = _names(problems) or list(chosen_suite.problems)
        for name in problem_names:
            get_problem(name)
        optimizer_list = check_optimizers(_names(optimizers) or optimizer_names())
        plan = sweep.Plan(trials=trials or chosen_suite.trials, seeds=seeds or chosen_suite.seeds, sampler=sampler)
        url = storage or store.default_storage(out)
        store.open_storage(url)
    except ValueError as error:
        _fail(str(error))
    if problems and suite:
        _fail("give either --problems or --suite, not both")
    pairs = [(p, o) for p in problem_names for o in optimizer_list]
    total = len(pairs) * (plan.trials + plan.seeds)
    done = sweep.count_runs(url, [(get_problem(p), from_catalog(o)) for p, o in pairs], plan)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns) as progress:
        task = progress.add_task("sweep", total=total, completed=done)
        on_run = lambda problem, optimizer: progress.update(task, advance=1, description=f"{problem} / {optimizer}")
        sweep.run_parallel(url, pairs, plan, workers=workers, on_run=on_run)
    paths = report_from_store(url, out)
    typer.echo(f"report: {paths['html']}\nsummary: {paths['markdown']}\nstore: {url}")


@app.command()
def report(
    storage: Annotated[Optional[str], typer.Option(help="Optuna RDB URL (default sqlite:///OUT/optimlab.db).")] = None,
    out: Annotated[Path, typer.Option(help="Output directory for the report.")] = DEFAULT_OUT,
) -> None:
    """Rebuild the report (HTML, Markdown, PNGs) from the store alone."""
    from optimlab.lab.report import report_from_store
    from optimlab.lab import store

    url = storage or store.default_storage(out)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        _fail(f"no store at {url}; run `optimlab bench --out {out}` first or pass --storage")
    paths = report_from_store(url, out)
    typer.echo(f"report: {paths['html']}\nsummary: {paths['markdown']}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
