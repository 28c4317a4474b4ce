"""The ``optimlab`` command: list optimizers and problems, run a benchmark sweep, write the report."""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="optimlab: compare optimizers on real problems, fairly, with plots and a report.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

DEFAULT_OUT = Path("optimlab-out")
RESUME = "re-run the same command to resume"
_debug = {"on": os.environ.get("OPTIMLAB_DEBUG", "") not in ("", "0")}


def _version(value: bool) -> None:
    if value:
        import optimlab

        typer.echo(f"optimlab {optimlab.__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks (or set OPTIMLAB_DEBUG=1).")] = False,
) -> None:
    """optimlab: compare optimizers on real problems, fairly, with plots and a report."""
    _debug["on"] = _debug["on"] or debug


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
        compared = f"{len(suite.optimizers)} optimizers" if suite.optimizers else "every optimizer"
        untuned = f"; untuned: {', '.join(suite.untuned)}" if suite.untuned else ""
        suites.add_row(name, f"{', '.join(suite.problems)} ({compared}, {suite.trials} trials, {suite.seeds} seeds"
                             f"{untuned})")
    for table in (optimizers, problems, suites):
        console.print(table)


def _option(message: str) -> str:
    """"sampler must be ..." as "--sampler must be ...": the line names the option given."""
    return f"--{message}" if message.split(" ", 1)[0] in ("sampler", "storage", "rank-by") else message


def _fail(message: str, code: int = 2) -> None:
    """One line on stderr and the exit code; with --debug, the traceback of the error being handled."""
    if _debug["on"] and sys.exc_info()[0] is not None:
        traceback.print_exc()
    typer.secho(message if message.startswith(("error:", "storage unreachable:", "interrupted:"))
                else f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


def _at_least_one(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            _fail(f"--{name} must be >= 1, got {value}")


def _check_writable(path: Path, what: str) -> None:
    """``path`` (a directory to be) is a directory where files can be made; probed for real,
    since permissions alone do not tell (root, read-only mounts). The probe leaves nothing."""
    if path.exists() and not path.is_dir():
        _fail(f"{what} is not a directory: {path}")
    existing = next(p for p in (path, *path.parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is a file")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        _fail(f"{what} is not writable: {path} ({getattr(error, 'strerror', None) or error})")


def _check_storage(url: str, plan, extend: bool) -> None:
    """The URL, its driver, a readable store made with this plan (or --extend): all read-only."""
    from optimlab.lab import store, sweep

    try:
        store.check_url(url)
        path = store.sqlite_path(url)
        if path is not None:
            _check_writable(path.parent, "--storage's folder")
        sweep.check(url, plan, extend)
    except store.StorageUnreachable as error:
        _fail(str(error), code=1)
    except ValueError as error:
        _fail(_option(str(error)))


@app.command()
def bench(
    problems: Annotated[Optional[list[str]], typer.Option(help="Problems, comma-separated or repeated.")] = None,
    optimizers: Annotated[Optional[list[str]], typer.Option(help="Optimizers (default: all).")] = None,
    untuned: Annotated[Optional[list[str]], typer.Option(
        help="Catalog optimizers also run untuned: their defaults, no search, the same seeds (the self-tuning "
             "track) [default: the suite's when --optimizers is not given; 'none' for none].")] = None,
    suite: Annotated[Optional[str], typer.Option(help="Named problem suite, used when --problems is not given.")] = None,
    trials: Annotated[Optional[int], typer.Option(help="Tuning points per study [default: the suite's].")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="Seeds each study's best setting is rerun with [default: the suite's].")] = None,
    studies: Annotated[Optional[int], typer.Option(help="Independent tuning studies per (problem, optimizer); the median counts [default: the suite's].")] = None,
    storage: Annotated[Optional[str], typer.Option(help="sqlite:///FILE or postgresql://USER@HOST/DB (default sqlite:///OUT/optimlab.db).")] = None,
    out: Annotated[Path, typer.Option(help="Output directory for the store and the report.")] = DEFAULT_OUT,
    sampler: Annotated[str, typer.Option(help="Tuning points: qmc (scrambled Halton) or random.")] = "qmc",
    workers: Annotated[Optional[int], typer.Option(help="Worker processes on this machine [default: min(cores, 2)].")] = None,
    extend: Annotated[bool, typer.Option(help="Add to a store made with a smaller budget (more trials, seeds or studies).")] = False,
    problem_file: Annotated[Optional[list[Path]], typer.Option(
        help="A Python file defining PROBLEMS (optimlab.lab.define_problem); repeatable.")] = None,
    optimizer_file: Annotated[Optional[list[Path]], typer.Option(
        help="A Python file defining OPTIMIZERS = {label: (factory, {'lr': (low, high)})}; repeatable.")] = None,
    rank_by: Annotated[str, typer.Option(help="steps (default; machine-independent) or time.")] = "steps",
    lr_find: Annotated[bool, typer.Option(
        "--lr-find", help="Centre each learning-rate search range on the LR range test's suggestion on the problem "
                          "(same width).")] = False,
) -> None:
    """Tune and rerun every optimizer on every problem, then write the report. Re-run to resume."""
    _at_least_one(trials=trials, seeds=seeds, studies=studies, workers=workers)
    if problems and suite:
        _fail(f"give either --problems or --suite, not both (got --problems {','.join(problems)} --suite {suite})")
    from optimlab.lab import store, sweep
    from optimlab.lab.optimizers import optimizer_names, unknown_name, untuned_label
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
        # A suite's own optimizers and untuned track go with its problems; named problems get every optimizer.
        from_suite = not (problems or user_problems)
        suite_optimizers = chosen_suite.optimizers if from_suite else None
        optimizer_list = _names(optimizers) or [*sources.user_candidates(), *(suite_optimizers or optimizer_names())]
        untuned_names = (list(chosen_suite.untuned) if untuned is None and from_suite and not optimizers
                         else [n for n in _names(untuned) if n.lower() != "none"])
        for name in untuned_names:
            if name.lower() not in optimizer_names():
                raise ValueError(f"--untuned takes catalog optimizers: {unknown_name('optimizer', name, optimizer_names())}")
        optimizer_list += [untuned_label(name) for name in untuned_names]
        optimizer_list = list(dict.fromkeys(sources.candidate(name).label for name in optimizer_list))
        plan = sweep.Plan(trials=trials or chosen_suite.trials, seeds=seeds or chosen_suite.seeds,
                          studies=studies or chosen_suite.studies, sampler=sampler, lr_find=lr_find)
    except ValueError as error:
        _fail(_option(str(error)))
    _check_writable(out, "--out")
    url = storage or store.default_storage(out)
    _check_storage(url, plan, extend)

    names = [(p, o) for p in problem_names for o in optimizer_list]
    command = shlex.join(["optimlab", *sys.argv[1:]])
    opened, ids, finished = store.Store(url), [], None
    try:
        with sweep.sigterm_interrupts():
            try:
                ids = sweep.prepare(opened, sweep.resolve(names, sources), plan, extend, command)
                done, total = opened.progress(ids)
                if done < total:
                    used, warning = sweep.workers_cap(workers or sweep.default_workers(), total - done)
                    if warning:
                        typer.secho(warning, fg=typer.colors.YELLOW, err=True)
                    _sweep(opened, ids, url, names, plan, used, sources, extend, command, done, total)
                finished = opened.finished_count()
            except (KeyboardInterrupt, sweep.Interrupted) as interrupt:
                finished = _finished(opened, ids)
                _fail(f"interrupted: {finished} runs finished and stored; {RESUME}",
                      code=143 if isinstance(interrupt, sweep.Interrupted) else 130)
    except store.StorageUnreachable as error:
        _fail(str(error), code=1)
    except sweep.RunFailed as error:
        _fail(f"{error}; its run was given back: {RESUME}", code=1)
    except ValueError as error:
        _fail(str(error))
    finally:
        opened.dispose()
    stamp = {"storage": url, "finished": finished, "rank_by": rank_by, "version": _optimlab_version()}
    if _report_stamp(out) == stamp:
        typer.echo(f"report up to date: {out / 'report.html'} (`optimlab report` rewrites it)\nstore: {url}")
        return
    paths = _write_report(url, out, rank_by, sources)
    _write_stamp(out, stamp)
    typer.echo(f"report: {paths['html']}\nsummary: {paths['markdown']}\nstore: {url}")


REPORT_STAMP = ".optimlab-report.json"  # what the report was made from: a re-run with nothing new skips it


def _optimlab_version() -> str:
    import optimlab

    return optimlab.__version__


def _report_stamp(out: Path) -> dict | None:
    """What the report in ``out`` was made from, if all of it is there."""
    import json

    if not all((out / name).exists() for name in ("report.html", "results.json", REPORT_STAMP)):
        return None
    try:
        return json.loads((out / REPORT_STAMP).read_text())
    except (OSError, ValueError):
        return None


def _write_stamp(out: Path, stamp: dict) -> None:
    import json

    from optimlab.lab.files import atomic_write_text

    atomic_write_text(out / REPORT_STAMP, json.dumps(stamp) + "\n")


def _sweep(opened, ids, url, names, plan, workers, sources, extend, command, done, total) -> None:
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    from optimlab.lab import sweep

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("sweep", total=total, completed=done)

        def on_run(problem: str, optimizer: str) -> None:  # the store's count: other commands' runs too
            progress.update(task, completed=opened.progress(ids)[0], description=f"{problem} / {optimizer}")

        sweep.run_parallel(url, names, plan, workers=workers, on_run=on_run, sources=sources, extend=extend,
                           command=command)
        progress.update(task, completed=opened.progress(ids)[0], description="sweep")


def _finished(opened, ids) -> str:
    """"N" runs of the command done in the store ("N of T"), or "?" if the store cannot say."""
    if not ids:
        return "0"
    try:
        done, total = opened.progress(ids)
    except Exception:  # noqa: BLE001 (interrupted while the store was away: the count is unknown)
        return "some"
    return f"{done} of {total}"


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

    try:
        results = load_results(url)
        if rank_by == "time":
            results.with_step_times(timing.ensure(out, results, sources.problem, sources.candidate))
        return write_report(results, out)
    except OSError as error:
        _fail(f"cannot write the report in {out}: {error}", code=1)


@app.command()
def report(
    storage: Annotated[Optional[str], typer.Option(help="The sweep's store URL (default sqlite:///OUT/optimlab.db).")] = None,
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
    try:
        store.check_url(url)
    except ValueError as error:
        _fail(_option(str(error)))
    path = store.sqlite_path(url)
    if path is not None and not path.exists():
        _fail(f"no store at {url}; run `optimlab bench --out {out}` first or pass --storage")
    _check_writable(out, "--out")
    try:
        _check_rank_by(rank_by)
        sources = Sources(tuple(map(str, problem_file or ())), tuple(map(str, optimizer_file or ())))
        paths = _write_report(url, out, rank_by, sources)
    except store.StorageUnreachable as error:
        _fail(str(error), code=1)
    except ValueError as error:
        _fail(str(error))
    (out / REPORT_STAMP).unlink(missing_ok=True)  # made here, not by bench: its next run rewrites it
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
    """The console script: no Python traceback reaches a user unless --debug asks for it."""
    try:
        app()
    except Exception as error:  # an environment fault nothing above foresaw
        if _debug["on"]:
            raise
        typer.secho(f"error: {type(error).__name__}: {error} (run with --debug for the traceback)",
                    fg=typer.colors.RED, err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
