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
    problem_file: Annotated[Optional[list[Path]], typer.Option(
        help="A Python file defining PROBLEMS (optimlab.lab.define_problem); repeatable.")] = None,
    optimizer_file: Annotated[Optional[list[Path]], typer.Option(
        help="A Python file defining OPTIMIZERS = {label: (factory, {'lr': (low, high)})}; repeatable.")] = None,
    rank_by: Annotated[str, typer.Option(help="steps (default; machine-independent) or time.")] = "steps",
) -> None:
    """Tune and rerun every optimizer on every problem, then write the report. Re-run to resume."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    from optimlab.lab import store, sweep
    from optimlab.lab.optimizers import optimizer_names
    from optimlab.lab.problems import get_suite
    from optimlab.lab.user import Sources

    try:
        _check_rank_by(rank_by)
        sources = Sources(tuple(map(str, problem_file or ())), tuple(map(str, optimizer_file or ())))
        chosen_suite = get_suite(suite or "quick")
        user_problems = [name for path in sources.problem_files for name in _user_problems(path)]
        problem_names = _names(problems) or user_problems or list(chosen_suite.problems)
        for name in problem_names:
            sources.problem(name)
        optimizer_list = _names(optimizers) or [*sources.user_candidates(), *optimizer_names()]
        optimizer_list = [sources.candidate(name).label for name in optimizer_list]
        plan = sweep.Plan(trials=trials or chosen_suite.trials, seeds=seeds or chosen_suite.seeds, sampler=sampler)
        url = storage or store.default_storage(out)
        store.open_storage(url)
    except ValueError as error:
        _fail(str(error))
    if problems and suite:
        _fail("give either --problems or --suite, not both")
    pairs = [(p, o) for p in problem_names for o in optimizer_list]
    total = len(pairs) * (plan.trials + plan.seeds)
    done = sweep.count_runs(url, sweep.resolve(pairs, sources), plan)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns) as progress:
        task = progress.add_task("sweep", total=total, completed=done)
        on_run = lambda problem, optimizer: progress.update(task, advance=1, description=f"{problem} / {optimizer}")
        sweep.run_parallel(url, pairs, plan, workers=workers, on_run=on_run, sources=sources)
    paths = _write_report(url, out, rank_by, sources)
    typer.echo(f"report: {paths['html']}\nsummary: {paths['markdown']}\nstore: {url}")


def _check_rank_by(rank_by: str) -> None:
    if rank_by not in ("steps", "time"):
        raise ValueError(f"rank-by must be steps or time, got {rank_by!r}")


def _user_problems(path: str) -> list[str]:
    from optimlab.lab.user import load_problems

    return list(load_problems(path))


def _write_report(url: str, out: Path, rank_by: str, sources) -> dict:
    """The report from the store; ranking by time measures (or reuses) interleaved step times."""
    from optimlab.lab import timing
    from optimlab.lab.report import write_report
    from optimlab.lab.results import load_results

    results = load_results(url)
    if rank_by == "time":
        results.with_step_times(timing.ensure(out, results, sources.problem, sources.candidate))
    return write_report(results, out)


@app.command()
def report(
    storage: Annotated[Optional[str], typer.Option(help="Optuna RDB URL (default sqlite:///OUT/optimlab.db).")] = None,
    out: Annotated[Path, typer.Option(help="Output directory for the report.")] = DEFAULT_OUT,
    rank_by: Annotated[str, typer.Option(help="steps (default; machine-independent) or time.")] = "steps",
    problem_file: Annotated[Optional[list[Path]], typer.Option(
        help="The problem files the sweep used (needed to measure step times with --rank-by time).")] = None,
    optimizer_file: Annotated[Optional[list[Path]], typer.Option(
        help="The optimizer files the sweep used (needed with --rank-by time).")] = None,
) -> None:
    """Rebuild the report (HTML, Markdown, PNGs, results.json/csv) from the store alone."""
    from optimlab.lab import store
    from optimlab.lab.user import Sources

    url = storage or store.default_storage(out)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        _fail(f"no store at {url}; run `optimlab bench --out {out}` first or pass --storage")
    try:
        _check_rank_by(rank_by)
        sources = Sources(tuple(map(str, problem_file or ())), tuple(map(str, optimizer_file or ())))
        paths = _write_report(url, out, rank_by, sources)
    except ValueError as error:
        _fail(str(error))
    typer.echo(f"report: {paths['html']}\nsummary: {paths['markdown']}")


@app.command("lr-find")
def lr_find_command(
    problem: Annotated[str, typer.Option(help="Problem name (see `optimlab list`).")],
    optimizer: Annotated[str, typer.Option(help="Optimizer name (see `optimlab list`).")] = "adam",
    steps: Annotated[int, typer.Option(help="Steps of the exponential sweep.")] = 100,
    start_lr: Annotated[float, typer.Option(help="First learning rate.")] = 1e-7,
    end_lr: Annotated[float, typer.Option(help="Last learning rate.")] = 10.0,
    seed: Annotated[int, typer.Option(help="Seed the problem is built with.")] = 0,
    out: Annotated[Path, typer.Option(help="Output directory for the plot.")] = DEFAULT_OUT,
) -> None:
    """LR range test (Smith 2017): sweep the learning rate up exponentially, plot the loss,
    print fastai's valley suggestion."""
    from optimlab.catalog import entry
    from optimlab.lab.lr_find import lr_sweep, write_plot
    from optimlab.lab.problems import get_problem

    try:
        entry(optimizer)
        task = get_problem(problem).build(seed, "validation", False)
        result = lr_sweep(task.model, lambda model, step: task.train_loss(step), range(1, steps + 1), optimizer,
                          start_lr=start_lr, end_lr=end_lr, steps=steps)
    except (ValueError, RuntimeError) as error:
        _fail(str(error))
    plot = out / f"lr_find_{problem}_{optimizer}.png"
    write_plot(result, plot)
    typer.echo(f"suggested lr: {result.suggestion:.3g}\nplot: {plot}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
