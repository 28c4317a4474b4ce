"""float16 and bfloat16 parameters on the fused path: the CPU kernel loads each element
into float32 registers, computes there and rounds once at the store, as torch's fused
kernels do; state in the parameter's dtype, or float32 with ``state_dtype``.

Oracles: torch's fused Adam and AdamW (the same arithmetic: within 1 ulp), torch's fused
Adagrad (it rounds every operation to the 16-bit dtype: within its rounding), torch's
for-loop SGD (torch 2.13's fused SGD on the CPU leaves 16-bit parameters of 16 elements
or more unchanged: see docs/performance.md), and the same run in float32.
"""

from __future__ import annotations

import pytest
import torch

import optimlab
from optimlab.fused import engine

pytestmark = pytest.mark.skipif(not engine.available(), reason="no C compiler for the fused path")

HALF = [torch.float16, torch.bfloat16]
SHAPES = [(300, 257), (4099,), (33, 3), (5,)]  # 82,000 elements: several threads
STEPS = 20
#: name: (optimlab class, torch class, options, torch's path, tolerance against it): ("ulps",
#: n): n units in the last place of each element (the same arithmetic: torch's fused Adam
#: family); ("scale", n): n times the dtype's epsilon times the tensor's largest magnitude
#: (torch rounds more often: the for-loop SGD's momentum buffer at each of its two
#: operations, the fused Adagrad at each of its six).
TWINS = {
    "adam": (optimlab.Adam, torch.optim.Adam, {"lr": 1e-3}, {"fused": True}, ("ulps", 1)),
    "amsgrad": (optimlab.Adam, torch.optim.Adam, {"lr": 1e-3, "amsgrad": True, "weight_decay": 0.01},
                {"fused": True}, ("ulps", 1)),
    "adamw": (optimlab.AdamW, torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 0.1}, {"fused": True}, ("ulps", 1)),
    "sgd": (optimlab.SGD, torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9, "nesterov": True}, {"foreach": False},
            ("scale", 3)),
    "adagrad": (optimlab.Adagrad, torch.optim.Adagrad, {"lr": 1e-2}, {"fused": True}, ("scale", 2)),
}


def _grads(seed: int, zeros: bool):
    """Gradients of |g| up to ~50, with exact zeros where ``zeros`` (an element whose moments
    stay 0: in 16-bit arithmetic Adam's eps=1e-8 rounds to 0 and 0/0 is NaN)."""
    generator = torch.Generator().manual_seed(seed)
    grads = [torch.randn(s, generator=generator) * 10 for s in SHAPES]
    if zeros:
        for g in grads:
            g.view(-1)[:3] = 0
    return grads


def _run(make, dtype, start, zeros=True, group=None, grads_in=None):
    """STEPS steps from ``start`` in ``dtype``, the gradients rounded to ``grads_in`` first."""
    params = [p.detach().to(dtype).clone().requires_grad_() for p in start]
    optimizer = make([{"params": params, **(group or {})}])
    for step in range(STEPS):
        for p, g in zip(params, _grads(step, zeros)):
            p.grad = g.to(grads_in or dtype).to(dtype)
        optimizer.step()
    return params, optimizer


def _ulps(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Units in the last place between two 16-bit tensors (their bits as ordered integers)."""
    def ordered(x):
        bits = x.view(torch.int16).to(torch.int32)
        return torch.where(bits < 0, -32768 - bits, bits)
    return (ordered(a) - ordered(b)).abs()


def _start():
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=generator) for s in SHAPES]


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("name", list(TWINS))
def test_half_fused_equals_torch(name, dtype):
    cls, torch_cls, options, torch_path, (kind, tolerance) = TWINS[name]
    start = _start()
    calls = engine.stats["calls"]
    ours, optimizer = _run(lambda groups: cls(groups, fused=True, **options), dtype, start)
    assert engine.stats["calls"] - calls >= STEPS - 1, "the kernel did not step"  # SGD's first: eager
    assert {t.dtype for t in optimizer.state[ours[0]].values() if isinstance(t, torch.Tensor)} == {dtype}
    zeros = name != "adagrad"  # torch's fused Adagrad computes in the 16-bit dtype: 0/0 where g = 0
    ours, _ = _run(lambda groups: cls(groups, fused=True, **options), dtype, start, zeros)
    theirs, _ = _run(lambda groups: torch_cls(groups, **torch_path, **options), dtype, start, zeros)
    for p, q in zip(ours, theirs):
        assert torch.isfinite(p).all()
        if kind == "ulps":
            assert _ulps(p, q).max().item() <= tolerance
        else:
            scale = torch.finfo(dtype).eps * q.float().abs().max().item()
            assert (p.float() - q.float()).abs().max().item() <= tolerance * scale


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("name", list(TWINS))
def test_half_fused_tracks_the_float32_run(name, dtype):
    """As close to the float32 run as torch's 16-bit run is (to 2 epsilons of the tensor's
    scale), where that is finite."""
    cls, torch_cls, options, torch_path, _ = TWINS[name]
    start = [p.to(dtype).float() for p in _start()]  # the same start in both precisions
    exact, _ = _run(lambda groups: cls(groups, fused=True, **options), torch.float32, start)
    ours, _ = _run(lambda groups: cls(groups, fused=True, **options), dtype, start)
    theirs, _ = _run(lambda groups: torch_cls(groups, **torch_path, **options), dtype, start)
    for p, q, x in zip(ours, theirs, exact):
        finite = torch.isfinite(q)
        ours_error = (p.float() - x)[finite].abs().max().item()
        theirs_error = (q.float() - x)[finite].abs().max().item()
        scale = torch.finfo(dtype).eps * x.abs().max().item()
        assert torch.isfinite(p).all() and ours_error <= theirs_error + 2 * scale


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_eager_16_bit_adam_goes_nan_where_the_kernel_does_not(dtype):
    """The case the kernel fixes: 16-bit eager arithmetic (torch's foreach path too) turns
    Adam's eps=1e-8 into 0 and gives 0/0 where a gradient is 0; the kernel stays finite."""
    start = _start()
    eager, _ = _run(lambda groups: optimlab.Adam(groups, foreach=True), dtype, start)
    fused, _ = _run(lambda groups: optimlab.Adam(groups, fused=True), dtype, start)
    assert (dtype == torch.float16) == any(p.isnan().any().item() for p in eager)
    assert all(torch.isfinite(p).all() for p in fused)


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("name", ["adam", "sgd", "adagrad"])
def test_float32_state(name, dtype):
    """``state_dtype=torch.float32``: float32 buffers, equal to those of a float32 run on
    the same (16-bit) gradients to float32 rounding, where 16-bit buffers are off by their
    rounding; and the eager path (float32 math on float32 copies) equal to the kernel to
    rounding."""
    cls, _, options, _, _ = TWINS[name]
    start = [p.to(dtype).float() for p in _start()]
    group = {"state_dtype": torch.float32}
    runs = {
        "exact": _run(lambda groups: cls(groups, fused=True, **options), torch.float32, start, grads_in=dtype),
        "wide": _run(lambda groups: cls(groups, fused=True, **options), dtype, start, group=group),
        "narrow": _run(lambda groups: cls(groups, fused=True, **options), dtype, start),
    }
    eager, _ = _run(lambda groups: cls(groups, foreach=True, **options), dtype, start, group=group)
    wide, optimizer = runs["wide"]
    state = optimizer.state[wide[0]]
    assert {t.dtype for t in state.values() if isinstance(t, torch.Tensor)} == {torch.float32}
    assert wide[0].dtype == dtype

    def error(run):  # the largest relative error of a buffer against the float32 run's
        (params, optimizer), (exact, exact_optimizer) = runs[run], runs["exact"]
        return max(((optimizer.state[p][key].float() - buffer).abs().max() / buffer.abs().max()).item()
                   for p, x in zip(params, exact) for key, buffer in exact_optimizer.state[x].items()
                   if isinstance(buffer, torch.Tensor))

    assert error("wide") < 1e-5 < torch.finfo(dtype).eps / 10 < error("narrow")
    for p, q in zip(wide, eager):
        assert _ulps(p, q).max().item() <= 1


def test_state_dtype_is_checked():
    with pytest.raises(ValueError, match=r"state_dtype must be None or torch.float32, got torch.float16"):
        optimlab.Adam([{"params": [torch.zeros(3, requires_grad=True)], "state_dtype": torch.float16}])


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_conversions_round_as_torch(dtype):
    """Every 16-bit value through the kernel's load and store: p <- p - lr * g with p = 0
    gives the float32 product rounded as torch rounds it (nearest even, subnormals,
    overflow to infinity, NaN), and with lr = 0 and g = 0 every value comes back unchanged."""
    every = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(dtype)
    for lr in (0.0, 1 / 3, 1e-3, 7.7, 3e4):
        p = torch.zeros_like(every, requires_grad=True) if lr else every.clone().requires_grad_()
        p.grad = every.clone() if lr else torch.zeros_like(every)  # lr = 0: p <- p + -0
        calls = engine.stats["calls"]
        optimlab.SGD([p], lr=lr, fused=True).step()
        assert engine.stats["calls"] == calls + 1
        expected = every if lr == 0 else (every.float() * -lr + 0.0).to(dtype)
        assert torch.equal(p.detach().view(torch.int16)[~expected.isnan()],
                           expected.view(torch.int16)[~expected.isnan()])
        assert torch.equal(p.detach().isnan(), expected.isnan())
