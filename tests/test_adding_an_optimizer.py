"""The recipe of docs/algorithms.md ("Adding an optimizer"), followed on a copy of the
project: an elementwise optimizer defined by its four pieces only (a transform module, an
alias, a catalog entry, a test Case) is exported, listed by ``optimizer``/``optimlab list``,
offered by the lab, and run through the test suite, fused path included."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TRANSFORM = '''
"""signSGD's scaling."""

from ..fused.spec import Elementwise
from ..transform import Transform


class scale_by_sign(Transform):
    """u <- sign(u) (Bernstein et al. 2018, "signSGD")."""

    def update(self, updates, state, params, hyperparams, step):
        return updates.sign()

    def elementwise(self, hyperparams):
        return Elementwise("u = (T)((u > 0) - (u < 0));")
'''

ALIAS = '''

from .transforms.sign import scale_by_sign


def signsgd(lr=1e-3, weight_decay=0.0, maximize=False) -> chain:
    """signSGD: p <- p - lr * sign(g + weight_decay * p)."""
    return _with_weight_decay(scale_by_sign(), lr, weight_decay, False, maximize)


@alias(signsgd)
class SignSGD(Optimizer):
    __doc__ = signsgd.__doc__

    def __init__(self, params, lr=1e-3, weight_decay=0, *, maximize=False, foreach=None, fused=None):
        super().__init__(params, signsgd(lr, weight_decay, maximize), foreach=foreach, fused=fused)
'''

ENTRY = '''    "signsgd": Entry("SignSGD", "signSGD: steps of the gradient's sign", lr_range(1e-5, 0.1), 1e-3),
'''

CASE = '''    Case(
        "signsgd", optimlab.SignSGD,
        lambda x, g, state, t, hp: x - hp["lr"] * ref.np.sign(ref._grad(x, g, hp)),
        samples=[{"lr": 0.01}, {"lr": 0.01, "weight_decay": 0.1, "maximize": True}],
        errors=COMMON_ERRORS,
        quadratic=({"lr": optimlab.schedules.exponential_decay(0.05, 0.99)}, 750, 1e-2),
        rosenbrock=({"lr": optimlab.schedules.exponential_decay(0.01, 0.999)}, 6000, 0.1),
    ),
'''


def _insert(path: Path, marker: str, text: str, before: bool = True, after: str = "") -> None:
    """``text`` before (or after) the first ``marker`` that follows ``after``."""
    source = path.read_text()
    start = source.find(after)
    at = source.find(marker, start)
    assert start >= 0 and at >= 0, f"{path.name} has no {marker!r} after {after!r}"
    at += 0 if before else len(marker)
    path.write_text(source[:at] + text + source[at:])


@pytest.mark.slow
def test_four_pieces_make_an_optimizer(tmp_path):
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", tmp_path / "tests", ignore=shutil.ignore_patterns("__pycache__", "lab"))
    package = tmp_path / "src" / "optimlab"
    (package / "transforms" / "sign.py").write_text(TRANSFORM)                        # 1. the transform
    (package / "aliases.py").write_text((package / "aliases.py").read_text() + ALIAS)  # 2. the alias
    _insert(package / "catalog.py", "}\n", ENTRY, after="\nCATALOG: dict")           # 3. the catalog entry
    _insert(tmp_path / "tests" / "optimizer_cases.py", "]\n\nCASES_BY_NAME", CASE)      # 4. the Case
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src"), "OPTIMLAB_CACHE_DIR": str(tmp_path / "kernels")}
    run = lambda *args: subprocess.run([sys.executable, *args], env=env, cwd=tmp_path, capture_output=True,  # noqa: E731
                                       text=True, timeout=600)
    probe = run("-c", textwrap.dedent("""
        import optimlab
        from optimlab.lab.optimizers import from_catalog, optimizer_names
        assert optimlab.optimizers()["signsgd"] == "signSGD: steps of the gradient's sign"
        assert optimlab.SignSGD.chain_function is optimlab.signsgd and "scale_by_sign" in optimlab.__all__
        assert "signsgd" in optimizer_names() and from_catalog("signsgd").space[0].high == 0.1
        print("ok")
    """))
    assert probe.stdout.strip() == "ok", probe.stderr
    listing = run("-c", "from optimlab.cli import main; main()", "list")
    assert listing.returncode == 0 and "signsgd" in listing.stdout, listing.stderr
    tests = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "signsgd", "tests/test_api.py",
                "tests/test_reference.py", "tests/test_fast_path.py", "tests/test_errors.py",
                "tests/test_convergence.py", "tests/test_checkpoint.py")
    assert tests.returncode == 0, tests.stdout[-3000:]
    passed = int(tests.stdout.strip().splitlines()[-1].split(" passed")[0].split()[-1])
    assert passed >= 30, tests.stdout[-500:]  # fused vs eager, NumPy formula, errors, convergence, resume...
