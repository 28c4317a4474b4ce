"""The verdict in words: numbers to sensible digits, the flags a result carries, and the
recommendation built from a problem's rank groups (all of it from the deterministic record)."""

from __future__ import annotations

import math

from .results import COSTLY_STEP, OptimizerResult, ProblemResult


def number(value: float, digits: int = 3) -> str:
    """``digits`` significant digits; "–" for NaN, "not reached" for inf; integers as integers."""
    if value is None or math.isnan(value):
        return "–"
    if math.isinf(value):
        return "not reached"
    if float(value).is_integer() and abs(value) < 10**digits:
        return str(int(value))
    return f"{value:.{digits}g}"


def span(interval: tuple[float, float], digits: int = 3) -> str:
    """"12" for a point, "12–30" for a range, "12–∞" when the worst never got there."""
    low, high = (number(v, digits) if not math.isinf(v) else "∞" for v in interval)
    return low if low == high else f"{low}–{high}"


def megabytes(value: float) -> str:
    if math.isnan(value):
        return "–"
    for unit, size in (("MB", 1.0), ("kB", 2**-10)):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value * 2**20:.3g} B"


def setting(result: OptimizerResult) -> str:
    if result.untuned:
        return "defaults (no search)"
    if result.best_hparams is None:
        return "–"
    return ", ".join(f"{name} {number(value)}" for name, value in result.best_hparams.items())


def flags(result: OptimizerResult) -> list[str]:
    """What makes a result less trustworthy than its rank says."""
    found = []
    if result.fragile:
        found.append(f"fragile: diverged in {result.diverged_tuning}/{len(result.tuning)} tuning runs")
    found += [f"{edge}: the best setting may lie outside it" for edge in result.edges]
    if result.seeds_touched:
        found.append(f"{result.seeds_touched}/{result.seeds} seeds touched the target but ended below it")
    return found


def _and(names: list[str]) -> str:
    bold = [f"**{n}**" for n in names]
    return bold[0] if len(bold) == 1 else ", ".join(bold[:-1]) + " and " + bold[-1]


def _describe(result: OptimizerResult) -> str:
    spec = result.spec
    final = f"final {spec.metric} {number(result.final_median, 4)}"
    if result.holds_target:
        sign = "≥" if spec.higher_is_better else "≤"
        return (f"{setting(result)}; held {spec.metric} {sign} {spec.target:g} on {result.seeds_held}/{result.seeds} "
                f"seeds, median {number(result.steps_to_target)} steps to the target "
                f"({span(result.steps_interval)} over seeds and studies); {final}")
    return f"{setting(result)}; did not hold the target on half its seeds; {final}"


def _why_chosen(chosen: OptimizerResult, group: list[OptimizerResult]) -> str:
    """Why `OptimizerResult.cheapness` put ``chosen`` before the optimizers ranked ahead of it."""
    ahead = group[: group.index(chosen)]
    if not ahead:
        return "it comes first by median steps to the target"
    fragile = [r.optimizer for r in ahead if r.fragile]
    edge = [r.optimizer for r in ahead if not r.fragile and r.edges]
    costly = [r.optimizer for r in ahead if not r.fragile and not r.edges]
    reasons = []
    names = lambda found: _and(found).replace("**", "")
    if fragile:
        reasons.append(f"{names(fragile)} diverged in most of {'their' if len(fragile) > 1 else 'its'} tuning runs")
    if edge:
        reasons.append(f"the best setting of {names(edge)} lies at the edge of the searched range")
    if costly:
        reasons.append(f"{names(costly)} {'take' if len(costly) > 1 else 'takes'} a costlier step "
                       "(more optimizer FLOPs or state)")
    return "; ".join(reasons)


def _cost_note(result: OptimizerResult) -> str | None:
    if result.step_cost <= COSTLY_STEP:
        return None
    return (f"{result.optimizer}'s step adds {result.step_cost:.2g}x the model's forward and backward FLOPs "
            "in matrix products, so per step it costs more than an elementwise optimizer")


def recommendation(problem: ProblemResult) -> str:
    """Plain sentences from the verdict: what to use, how sure, what to watch for, what is next."""
    groups = problem.groups()
    if not groups or all(r.tier == 2 for r in groups[0]):
        return "Every optimizer diverged at every setting tried: widen the search space or lower the rates."
    chosen = problem.recommended()
    spec = problem.spec
    text = []
    if chosen is None:
        best = [r.optimizer for r in groups[0]]
        target = "its target" if spec.target is None else f"the target {spec.target:g}"
        text.append(f"No optimizer held {target} on half of its seeds within {spec.steps} steps, so the answer is "
                    f"uncertain; by final {spec.metric} the best {'group is' if len(best) > 1 else 'is'} "
                    f"{_and(best)} ({_describe(groups[0][0])}). A larger step budget may change this.")
        return " ".join(text)
    group = groups[0]
    text.append(f"Use **{chosen.optimizer}** ({_describe(chosen)}).")
    if len(group) > 1:
        others = [r.optimizer for r in group if r is not chosen]
        text.append(f"It is indistinguishable here from {_and(others)} (steps to the target within the noise of "
                    f"seeds and studies); it is chosen among them because {_why_chosen(chosen, group)}.")
    for flag in flags(chosen):
        text.append(f"Caution: {flag}.")
    if chosen.fragile or chosen.edges:
        safer = [r for r in problem.ranking() if r.holds_target and not r.fragile and not r.edges]
        if safer:
            text.append(f"A safer choice: **{safer[0].optimizer}** (rank {problem.ranks()[safer[0].optimizer]}; "
                        f"{_describe(safer[0])}).")
    notes = [note for note in map(_cost_note, group) if note]
    if notes:
        text.append("Step cost: " + "; ".join(notes) + ".")
    if len(groups) > 1 and groups[1][0].tier < 2:
        runner_up = min(groups[1], key=OptimizerResult.cheapness)
        text.append(f"Next: **{runner_up.optimizer}** (rank {problem.ranks()[runner_up.optimizer]}; {_describe(runner_up)}).")
    fragile = [r.optimizer for r in problem.optimizers.values() if r.tuning and r.diverged_tuning == len(r.tuning)]
    if fragile:
        text.append(f"Diverged at every setting tried: {', '.join(fragile)}.")
    return " ".join(text)


def _steps_phrase(result: OptimizerResult) -> str:
    spec = result.spec
    if result.holds_target:
        return f"held the target in {number(result.steps_to_target)} steps (median over seeds)"
    return f"did not hold the target on half its seeds (final {spec.metric} {number(result.final_median, 4)})"


def self_tuning(problem: ProblemResult) -> str | None:
    """The self-tuning track against the tuned optimizers, in a sentence: the best untuned
    optimizer, and whether the best tuned one, with its tuning runs, did better (a better
    rank), as well (a shared rank) or worse. None without both kinds."""
    ranking, ranks = problem.ranking(), problem.ranks()
    untuned = next((r for r in ranking if r.untuned), None)
    tuned = next((r for r in ranking if not r.untuned), None)
    if untuned is None or tuned is None:
        return None
    text = f"**{untuned.optimizer}** {_steps_phrase(untuned)} at its defaults, with no tuning run (rank {ranks[untuned.optimizer]})"
    trials = f"{len(tuned.tuning)} tuning trials"
    if ranks[tuned.optimizer] < ranks[untuned.optimizer]:
        verdict = f"tuned **{tuned.optimizer}** needed {trials} to do better: it {_steps_phrase(tuned)}"
    elif ranks[tuned.optimizer] == ranks[untuned.optimizer]:
        verdict = (f"tuned **{tuned.optimizer}** did as well (a shared rank: within the noise) after {trials}: "
                   f"it {_steps_phrase(tuned)}")
    else:
        verdict = (f"no tuned optimizer did as well: the best, **{tuned.optimizer}** (rank {ranks[tuned.optimizer]}, "
                   f"after {trials}), {_steps_phrase(tuned)}")
    return f"{text}; {verdict}."
