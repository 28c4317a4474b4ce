"""The lab: compare optimizers on real problems, fairly, with plots and a report.

Needs the ``lab`` extras (SQLAlchemy, matplotlib, scikit-learn, scipy, mnist1d, typer, rich);
``import optimlab`` alone never imports this package, and this package imports each part on
first use (``optimlab list`` needs neither the store nor the plots).
"""

import importlib

#: public name -> the submodule that defines it
_HOMES = {
    "compare": "compare", "Candidate": "optimizers", "candidate": "user", "define_problem": "user",
    "PROBLEMS": "problems", "SUITES": "problems", "Problem": "problems", "ProblemSpec": "problems",
    "get_problem": "problems", "report_from_store": "report", "write_report": "report", "Results": "results",
    "load_results": "results", "lr_find": "lr_find", "RunRecord": "runner", "run": "runner", "Plan": "sweep", "run_parallel": "sweep",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
