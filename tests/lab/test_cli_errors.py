"""Every bad input of `optimlab bench` / `report`: exit 2, one `error:` line naming the argument and
its value, and nothing created or changed."""

import importlib.util
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from optimlab import cli
from optimlab.lab import store, sweep
from optimlab.lab.problems import get_problem
from optimlab.lab.optimizers import from_catalog

runner = CliRunner()
SMALL = ["--problems", "saddle", "--optimizers", "sgd", "--trials", "3", "--seeds", "2", "--workers", "1"]


def _snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def _made_store(out, trials=3):
    """A store made with --trials ``trials`` (its budget enqueued; nothing run)."""
    url = store.default_storage(out)
    plan = sweep.Plan(trials=trials, seeds=2)
    opened = store.Store(url)
    sweep.prepare(opened, [(get_problem("saddle"), from_catalog("sgd"))], plan, False, "test")
    opened.dispose()
    return out / "optimlab.db"


def _corrupt(out):
    (out / "optimlab.db").write_bytes(b"this is not a database\n" * 100)


def _truncated(out):
    db = _made_store(out)
    data = db.read_bytes()
    for extra in out.glob("optimlab.db-*"):
        extra.unlink()
    db.write_bytes(data[: len(data) // 2])


CASES = {
    "trials 0": (["--trials", "0"], None, "--trials must be >= 1, got 0"),
    "seeds 0": (["--seeds", "0"], None, "--seeds must be >= 1, got 0"),
    "studies 0": (["--studies", "0"], None, "--studies must be >= 1, got 0"),
    "workers 0": (["--workers", "0"], None, "--workers must be >= 1, got 0"),
    "workers negative": (["--workers", "-2"], None, "--workers must be >= 1, got -2"),
    "in-memory sqlite": (["--storage", "sqlite://"], None, "'sqlite://' is in memory"),
    "in-memory sqlite file": (["--storage", "sqlite:///:memory:"], None, "'sqlite:///:memory:' is in memory"),
    "unknown scheme": (["--storage", "mysql://user@host/db"], None, "--storage must be a sqlite:///FILE or "
                                                                     "postgresql://USER@HOST/DB URL, got 'mysql://user@host/db'"),
    "not a url": (["--storage", "sweep.db"], None, "got 'sweep.db'"),
    "out is a file": (["--out", "{tmp}/file"], lambda tmp: (tmp / "file").write_text("x"),
                      "--out is not a directory: {tmp}/file"),
    "out not writable": (["--out", "/proc/optimlab-out"], None, "--out is not writable: /proc/optimlab-out"),
    "corrupt store": ([], _corrupt, "not a readable optimlab store: {tmp}/optimlab.db"),
    "truncated store": ([], _truncated, "not a readable optimlab store: {tmp}/optimlab.db"),
    "another budget": (["--trials", "4"], _made_store, "store was made with trials 3"),
    "extend smaller": (["--trials", "2", "--extend"], _made_store, "--extend can only add"),
    "unknown problem": (["--problems", "sadle"], None, "unknown problem 'sadle' (did you mean 'saddle'?)"),
    "unknown optimizer": (["--optimizers", "adamx"], None, "unknown optimizer 'adamx' (did you mean 'adamax'?)"),
    "problems and suite": (["--suite", "quick"], None, "give either --problems or --suite"),
    "unknown sampler": (["--sampler", "tpe"], None, "--sampler must be one of qmc, random, got 'tpe'"),
    "unknown rank-by": (["--rank-by", "speed"], None, "rank-by must be steps or time, got 'speed'"),
}
if importlib.util.find_spec("psycopg2") is None:
    CASES["missing driver"] = (["--storage", "postgresql+psycopg2://user@host/db"], None,
                               "needs the psycopg2 driver: pip install 'psycopg2-binary'")


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_error_line_exit_2_and_changes_nothing(tmp_path, monkeypatch, case):
    monkeypatch.setitem(cli._debug, "on", False)
    extra, setup, expected = CASES[case]
    if setup:
        setup(tmp_path)
    before = _snapshot(tmp_path)
    extra = [arg.replace("{tmp}", str(tmp_path)) for arg in extra]
    result = runner.invoke(cli.app, ["bench", *SMALL, "--out", str(tmp_path), *extra])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected.replace("{tmp}", str(tmp_path)) in lines[0]
    assert "Traceback" not in result.output
    assert _snapshot(tmp_path) == before


def test_report_of_a_corrupt_store_says_so(tmp_path):
    _corrupt(tmp_path)
    result = runner.invoke(cli.app, ["report", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: not a readable optimlab store: {tmp_path}/optimlab.db (file is not a database)"


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setitem(cli._debug, "on", False)
    _corrupt(tmp_path)
    result = runner.invoke(cli.app, ["--debug", "bench", *SMALL, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "not a readable optimlab store" in result.stderr.splitlines()[-1]


def test_workers_are_capped_by_the_work_and_the_memory(monkeypatch):
    assert sweep.workers_cap(2, 10) == (2, None)
    assert sweep.workers_cap(100, 3) == (3, "warning: --workers 100 capped to 3: 3 runs are left")
    monkeypatch.setattr(sweep, "_available_memory_mb", lambda: 2.5 * sweep.WORKER_MEMORY_MB)
    workers, warning = sweep.workers_cap(100, 50)
    assert workers == 2 and warning.startswith("warning: --workers 100 capped to 2: ")


def test_help_and_version_import_no_torch_sqlalchemy_or_matplotlib():
    code = ("import sys; from typer.testing import CliRunner; from optimlab.cli import app; "
            "assert CliRunner().invoke(app, ['--help']).exit_code == 0; "
            "print(CliRunner().invoke(app, ['--version']).output.strip()); "
            "print(sorted(m for m in ('torch', 'sqlalchemy', 'matplotlib', 'scipy') if m in sys.modules))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    import optimlab

    assert output.splitlines() == [f"optimlab {optimlab.__version__}", "[]"]


def test_list_shows_every_optimizer_and_problem_without_importing_torch():
    code = ("import sys; from typer.testing import CliRunner; from optimlab.cli import app; "
            "result = CliRunner().invoke(app, ['list'], terminal_width=200); assert result.exit_code == 0; "
            "print(sorted(m for m in ('torch', 'sqlalchemy', 'matplotlib', 'optuna', 'numpy') if m in sys.modules)); "
            "print(result.output)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    import optimlab
    from optimlab.lab.problems import PROBLEMS

    assert output.splitlines()[0] == "[]"
    listed = {line.split("│")[1].strip() for line in output.splitlines()[1:] if line.count("│") >= 3}
    assert set(optimlab.optimizers()) | set(PROBLEMS) <= listed


def test_a_full_disk_while_writing_the_report_is_one_line_and_leaves_the_old_report_whole(tmp_path, monkeypatch):
    import errno

    from optimlab.lab import files

    tiny = ["bench", "--problems", "saddle", "--optimizers", "sgd", "--trials", "1", "--seeds", "1", "--workers", "1",
            "--out", str(tmp_path)]
    assert runner.invoke(cli.app, tiny).exit_code == 0
    before = (tmp_path / "report.html").read_bytes()
    real_fdopen = files.os.fdopen

    class FullDisk:  # a file whose writes fail as on a full disk, after the temporary file exists
        def __init__(self, handle, mode):
            self.file = real_fdopen(handle, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fdopen", FullDisk)
    (tmp_path / cli.REPORT_STAMP).unlink()  # else the re-run keeps the report it made
    result = runner.invoke(cli.app, tiny)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot write the report in {tmp_path}: [Errno 28] No space left on device"]
    assert (tmp_path / "report.html").read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_rerun_with_nothing_new_keeps_its_report_and_report_rewrites_it(tmp_path):
    tiny = ["bench", "--problems", "saddle", "--optimizers", "sgd", "--trials", "1", "--seeds", "1", "--workers", "1",
            "--out", str(tmp_path)]
    assert runner.invoke(cli.app, tiny).exit_code == 0
    written = (tmp_path / "report.html").stat().st_mtime_ns
    again = runner.invoke(cli.app, tiny)
    assert again.exit_code == 0 and "report up to date" in again.output
    assert (tmp_path / "report.html").stat().st_mtime_ns == written
    assert runner.invoke(cli.app, ["report", "--out", str(tmp_path)]).exit_code == 0
    assert (tmp_path / "report.html").stat().st_mtime_ns != written
    assert runner.invoke(cli.app, ["bench", *tiny[1:], "--rank-by", "time"]).exit_code == 0
    assert (tmp_path / "step_times.json").exists()  # another ranking is a new report
