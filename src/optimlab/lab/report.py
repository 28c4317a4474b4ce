"""The report: a leaderboard and the run's metadata, then per problem a recommendation, a ranked
table and figures; written as a self-contained HTML page, a Markdown summary, PNG files and the
machine-readable results.json / results.csv (see `export`)."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from . import export, plots
from .advice import flags, megabytes, number, recommendation, self_tuning, setting, span
from .files import atomic_write_text
from .problems.test_functions import FUNCTIONS
from .results import ProblemResult, Results, load_results
from .timing import UNIT

COLUMNS = ("rank", "optimizer", "setting", "steps to target", "seeds holding target", "final metric",
           "optimizer FLOPs / model FLOPs", "step time (ms)", "state", "diverged in tuning", "flags")
LEADERBOARD_COLUMNS = ("optimizer", "score", "wins", "median rank", "problems")


def table_rows(problem: ProblemResult) -> list[dict[str, str]]:
    ranks = problem.ranks()
    rows = []
    for result in problem.ranking():
        if result.final_metrics:
            final, spread = number(result.final_median, 4), span(result.final_interval, 4)
            final += f" [{spread}]" if "–" in spread else ""
        else:
            final = "all diverged"
        if result.diverged_reruns:
            final += f" ({result.diverged_reruns}/{result.seeds} seeds diverged)"
        steps = number(result.steps_to_target)
        if result.tier == 0 and span(result.steps_interval) != steps:
            steps += f" [{span(result.steps_interval)}]"
        held = f"{result.seeds_held}/{result.seeds}"
        step_time = number(result.mean_step_time * 1e3)
        if result.step_time is not UNIT:  # ranked by time: the interleaved measurement, and steps x it
            timed = result.step_time
            step_time = f"{number(timed.median * 1e3)} [{number(timed.low * 1e3)}–{number(timed.high * 1e3)}]"
            steps += f" = {number(result.cost_to_target * 1e3)} ms"
        rows.append(dict(zip(COLUMNS, (
            str(ranks[result.optimizer]), result.optimizer, setting(result), steps, held, final,
            number(result.step_cost, 2), step_time,
            megabytes(result.state_mb), f"{result.diverged_tuning}/{len(result.tuning)}",
            "; ".join(flags(result))))))
    return rows


def leaderboard_rows(results: Results) -> list[dict[str, str]]:
    return [dict(zip(LEADERBOARD_COLUMNS, (row.optimizer, f"{row.score:.3f}", str(row.wins),
                                           number(row.median_rank), str(row.problems))))
            for row in results.leaderboard()]


def meta_lines(results: Results) -> list[str]:
    """The record of how the results were made: command, budget, versions, machine, date."""
    plan, meta = results.plan, results.plan.get("meta", {})
    runs = [r for p in results.problems.values() for o in p.optimizers.values() for r in o.tuning + o.reruns]
    lines = []
    if meta.get("command"):
        lines.append(f"command: {meta['command']}")
    if plan:
        lines.append(f"budget per (problem, optimizer): {plan.get('trials')} trials x {plan.get('studies', 1)} "
                     f"studies, then {plan.get('seeds')} seeds; sampler {plan.get('sampler', 'qmc')}")
        if plan.get("lr_find"):
            lines.append("learning-rate ranges centred on each optimizer's LR range test suggestion (--lr-find)")
        if any(o.untuned for p in results.problems.values() for o in p.optimizers.values()):
            lines.append(f"untuned (self-tuning track): no trials, the defaults run over the same {plan.get('seeds')} "
                         "seeds with the same step budget")
    for key in ("versions", "cpu", "threads", "started"):
        if meta.get(key):
            value = meta[key]
            value = ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else value
            lines.append(f"{key}: {value}")
    lines.append(f"{len(runs)} runs, {sum(r.train_time for r in runs):.0f} s of training in all")
    lines.append("ranked by " + ("time to target: steps to target x step time measured interleaved "
                                 "(OUT/step_times.json)" if results.rank_by == "time" else
                                 "steps to target (machine-independent; step times are shown, not ranked by)"))
    return lines


def _markdown_table(columns, rows: list[dict[str, str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row[c] for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(columns, rows: list[dict[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(row[c])}</td>" for c in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _html_paragraph(markdown: str) -> str:
    parts = html.escape(markdown).split("**")
    return "<p>" + "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts)) + "</p>"


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1250px;color:#222;padding:0 1em}
table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
td{white-space:nowrap}td:last-child{white-space:normal;min-width:16em}th{background:#f0f0f0}tr:nth-child(even){background:#fafafa}img{max-width:100%;display:block;margin:0.5em 0}
.rec{background:#eef6ee;border-left:4px solid #4a4;padding:0.5em 1em}h2{border-bottom:1px solid #ddd;margin-top:2em}
.meta{font-size:12px;color:#555;background:#f7f7f7;padding:0.5em 1em;font-family:ui-monospace,monospace}
nav a{margin-right:1em}"""

_PROTOCOL = ("Each optimizer's hyperparameters are tuned with an equal budget on a validation split (several "
             "independent studies; the median study's best setting counts), then that setting is rerun over "
             "several seeds on the test split; an untuned optimizer (the self-tuning track) runs its defaults over "
             "the same seeds with no tuning. Ranks come from steps to a held target (then final metric), never "
             "from wall-clock time; optimizers within each other's noise share a rank. See docs/lab.md.")

_LEADERBOARD = ("Score: AlgoPerf's benchmark score, the performance profile on steps to target integrated up to "
                f"r_max = 4 (1 = best on every problem). Wins: problems on which it shares rank 1.")


def write_report(results: Results, out_dir: str | Path) -> dict[str, Path]:
    """Write report.html, summary.md, results.json, results.csv and plots/*.png under ``out_dir``
    (each file written whole or not at all); returns their paths."""
    out = Path(out_dir)
    figures = out / "plots"
    figures.mkdir(parents=True, exist_ok=True)
    meta = meta_lines(results)
    markdown = ["# optimlab report", "", *[f"    {line}" for line in meta], ""]
    page = ["<h1>optimlab report</h1>", f'<div class="meta">{"<br>".join(map(html.escape, meta))}</div>',
            f"<p>{len(results.problems)} problems, {len(results.optimizers)} optimizers. {html.escape(_PROTOCOL)}</p>"]
    if not results.problems:
        markdown.append("No finished runs in the store yet.")
        page.append("<p>No finished runs in the store yet.</p>")
    else:
        board = leaderboard_rows(results)
        profile = plots.performance_profile(results, figures / "performance_profile.png")
        markdown += ["## Leaderboard", "", _LEADERBOARD, "", _markdown_table(LEADERBOARD_COLUMNS, board), "",
                     f"![performance profile](plots/{profile.name})", ""]
        links = "".join(f'<a href="#{html.escape(name)}">{html.escape(name)}</a>' for name in results.problems)
        page += [f"<nav>{links}</nav>", "<h2>Leaderboard</h2>", f"<p>{html.escape(_LEADERBOARD)}</p>",
                 _html_table(LEADERBOARD_COLUMNS, board), _html_image(profile)]
    for name, problem in results.problems.items():
        spec = problem.spec
        rows = table_rows(problem)
        advice = recommendation(problem)
        target = "none" if spec.target is None else f"{spec.metric} {'≥' if spec.higher_is_better else '≤'} {spec.target:g}"
        about = f"{spec.description}. Target: {target}; budget {spec.steps} steps" + (
            f", batch size {spec.batch_size}" if spec.batch_size else "") + "."
        images = [plots.curves(problem, figures / f"{name}_curves.png"),
                  plots.sensitivity(problem, figures / f"{name}_lr_sensitivity.png")]
        if name in FUNCTIONS:
            images.append(plots.trajectories(problem, figures / f"{name}_trajectories.png"))
        untuned = self_tuning(problem)
        markdown += [f"## {name}", "", about, "", f"**Recommendation.** {advice}", ""]
        markdown += [f"**Self-tuning.** {untuned}", ""] if untuned else []
        markdown += [_markdown_table(COLUMNS, rows), ""]
        markdown += [f"![{p.stem}](plots/{p.name})" for p in images] + [""]
        page += [f'<h2 id="{html.escape(name)}">{html.escape(name)}</h2>', f"<p>{html.escape(about)}</p>",
                 f'<div class="rec">{_html_paragraph("Recommendation. " + advice)}</div>']
        page += [_html_paragraph("Self-tuning. " + untuned)] if untuned else []
        page += [_html_table(COLUMNS, rows)]
        page += [_html_image(p) for p in images]
    paths = {"html": out / "report.html", "markdown": out / "summary.md", "plots": figures,
             **export.write(results, out)}
    atomic_write_text(paths["markdown"], "\n".join(markdown) + "\n")
    atomic_write_text(paths["html"], f"<!doctype html><html><head><meta charset='utf-8'><title>optimlab report</title>"
                                     f"<style>{_STYLE}</style></head><body>{''.join(page)}</body></html>\n")
    return paths


def report_from_store(storage_url: str, out_dir: str | Path) -> dict[str, Path]:
    """Rebuild the results from the store and write the report."""
    return write_report(load_results(storage_url), out_dir)
