"""The lab: compare optimizers on real problems, fairly, with plots and a report.

Needs the ``lab`` extras (sqlalchemy, psycopg, scipy, matplotlib, scikit-learn, mnist1d, typer, rich);
``import optimlab`` alone never imports this package.
"""

from .compare import compare
from .optimizers import Candidate
from .user import candidate, define_problem
from .problems import PROBLEMS, SUITES, Problem, ProblemSpec, get_problem
from .report import report_from_store, write_report
from .results import Results, load_results
from .runner import RunRecord, run
from .sweep import Plan, run_parallel

__all__ = ["PROBLEMS", "SUITES", "Candidate", "Plan", "Problem", "ProblemSpec", "Results", "RunRecord", "candidate",
           "compare", "define_problem", "get_problem", "load_results", "report_from_store", "run", "run_parallel",
           "write_report"]
