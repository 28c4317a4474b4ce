"""The report: a ranked table, figures and a plain-language recommendation per problem, written
as a self-contained HTML page, a Markdown summary and PNG files."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from . import plots
from .problems.test_functions import FUNCTIONS
from .results import OptimizerResult, ProblemResult, Results, load_results

COLUMNS = ("rank", "optimizer", "best lr", "final metric (mean ± std)", "seeds reaching target",
           "steps to target", "time to target (s)", "step time (ms)", "state (MB)", "diverged in tuning")


def _number(value: float, digits: int = 4) -> str:
    if math.isnan(value):
        return "–"
    return "not reached" if math.isinf(value) else f"{value:.{digits}g}"


def table_rows(problem: ProblemResult) -> list[dict[str, str]]:
    rows = []
    for rank, result in enumerate(problem.ranking(), start=1):
        n = len(result.reruns)
        final = (f"{_number(result.final_mean)} ± {_number(result.final_std, 2)}" if result.final_metrics
                 else "all diverged")
        if result.diverged_reruns:
            final += f" ({result.diverged_reruns}/{n} seeds diverged)"
        rows.append(dict(zip(COLUMNS, (
            str(rank), result.optimizer,
            _number(result.best_hparams["lr"], 3) if result.best_hparams else "–",
            final, f"{result.reached}/{n}", _number(result.steps_to_target), _number(result.time_to_target, 3),
            _number(result.mean_step_time * 1e3, 3), _number(result.state_mb, 3),
            f"{result.diverged_tuning}/{len(result.tuning)}"))))
    return rows


def _describe(result: OptimizerResult) -> str:
    spec = result.spec
    lr = f"lr {result.best_hparams['lr']:.3g}"
    final = f"final {spec.metric} {_number(result.final_mean)} ± {_number(result.final_std, 2)}"
    if result.reached:
        return (f"{lr}; reached {spec.metric} {'≥' if spec.higher_is_better else '≤'} {spec.target:g} on "
                f"{result.reached}/{len(result.reruns)} seeds, median {_number(result.steps_to_target)} steps "
                f"({_number(result.time_to_target, 3)} s); {final}")
    return f"{lr}; did not reach the target on most seeds; {final}"


def recommendation(problem: ProblemResult) -> str:
    """A few plain sentences: what to use, the runner-up, and what to avoid."""
    ranked = [r for r in problem.ranking() if r.final_metrics]
    if not ranked:
        return "Every optimizer diverged at every learning rate tried: widen the search space or lower the rates."
    best = ranked[0]
    text = [f"Use **{best.optimizer}** ({_describe(best)})."]
    if len(ranked) > 1:
        text.append(f"Runner-up: **{ranked[1].optimizer}** ({_describe(ranked[1])}).")
    if not best.reached and problem.spec.target is not None:
        text.append(f"No optimizer reached the target {problem.spec.target:g} within {problem.spec.steps} steps "
                    "on most seeds, so this ranking is by final metric; a larger step budget may change it.")
    robust = max(ranked, key=lambda r: (r.tuning_reaching_target, -r.diverged_tuning))
    if robust.tuning_reaching_target:
        text.append(f"Least sensitive to the learning rate: **{robust.optimizer}**, which reached the target with "
                    f"{robust.tuning_reaching_target} of its {len(robust.tuning)} tried learning rates.")
    fragile = [r.optimizer for r in problem.optimizers.values() if r.tuning and r.diverged_tuning == len(r.tuning)]
    if fragile:
        text.append(f"Diverged at every tried learning rate: {', '.join(fragile)}.")
    return " ".join(text)


def _markdown_table(rows: list[dict[str, str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row[c] for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(rows: list[dict[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(row[c])}</td>" for c in COLUMNS) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _html_paragraph(markdown: str) -> str:
    parts = html.escape(markdown).split("**")
    return "<p>" + "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts)) + "</p>"


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1300px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 8px}
th{background:#f0f0f0}tr:nth-child(even){background:#fafafa}img{max-width:100%;display:block;margin:0.5em 0}
.rec{background:#eef6ee;border-left:4px solid #4a4;padding:0.5em 1em}h2{border-bottom:1px solid #ddd}"""


def write_report(results: Results, out_dir: str | Path) -> dict[str, Path]:
    """Write report.html, summary.md and plots/*.png under ``out_dir``; returns their paths."""
    out = Path(out_dir)
    figures = out / "plots"
    figures.mkdir(parents=True, exist_ok=True)
    markdown = ["# optimlab report", ""]
    page = [f"<h1>optimlab report</h1><p>{len(results.problems)} problems, {len(results.optimizers)} optimizers. "
            "Protocol: learning rate tuned with an equal trial budget per optimizer on a validation split; "
            "the best setting rerun over several seeds on the test split (see docs/lab.md).</p>"]
    if not results.problems:
        markdown.append("No finished runs in the store yet.")
        page.append("<p>No finished runs in the store yet.</p>")
    else:
        profile = plots.performance_profile(results, figures / "performance_profile.png")
        markdown += ["## Performance profile", "", f"![performance profile](plots/{profile.name})", ""]
        page += ["<h2>Performance profile</h2>", "<p>For each optimizer, the fraction of problems on which its "
                 "median time to target is within a factor tau of the fastest optimizer's (AlgoPerf).</p>",
                 _html_image(profile)]
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
        markdown += [f"## {name}", "", about, "", f"**Recommendation.** {advice}", "", _markdown_table(rows), ""]
        markdown += [f"![{p.stem}](plots/{p.name})" for p in images] + [""]
        page += [f'<h2 id="{html.escape(name)}">{html.escape(name)}</h2>', f"<p>{html.escape(about)}</p>",
                 f'<div class="rec">{_html_paragraph("Recommendation. " + advice)}</div>', _html_table(rows)]
        page += [_html_image(p) for p in images]
    paths = {"html": out / "report.html", "markdown": out / "summary.md", "plots": figures}
    paths["markdown"].write_text("\n".join(markdown) + "\n")
    paths["html"].write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>optimlab report</title>"
                             f"<style>{_STYLE}</style></head><body>{''.join(page)}</body></html>\n")
    return paths


def report_from_store(storage_url: str, out_dir: str | Path) -> dict[str, Path]:
    """Rebuild the results from the store and write the report."""
    return write_report(load_results(storage_url), out_dir)
