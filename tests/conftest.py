"""Fixtures of the optimizer test suite (tests/lab has its own)."""

import pytest
import torch


@pytest.fixture
def float64():
    """Run the test with float64 as torch's default dtype (torch.optim.NAdam keeps its
    mu_product, and RAdam/NAdam their scalars, in the default dtype), then restore it."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture
def bit_exact(monkeypatch):
    """The fused path in its bit-exact mode (torch.sqrt's square roots, torch's global
    norm): it must then give the eager path's bits."""
    from optimlab.fused import engine

    monkeypatch.setattr(engine, "bit_exact", True)


def pytest_terminal_summary(terminalreporter):
    """The worst relative difference each comparison saw, per optimizer."""
    try:
        from helpers import PARITY_LOG
    except ImportError:  # pragma: no cover
        return
    if not PARITY_LOG:
        return
    terminalreporter.section("worst relative differences (optimlab vs oracle)")
    for key in sorted(PARITY_LOG):
        terminalreporter.write_line(f"{key:<60} {PARITY_LOG[key]:.2e}")
