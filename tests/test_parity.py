"""optimlab against torch.optim, side by side, in float64 (and the two execution paths of
optimlab against each other)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from optimlab.fused import engine

from helpers import MLP, PARITY_RTOL, PARITY_STEPS, assert_close, param_groups, params_of, record, train
from optimizer_cases import ALL_SAMPLES, CASES, TORCH_CASES, TORCH_SAMPLES, ids

pytestmark = pytest.mark.usefixtures("float64")


def _pair(case, sample, execution, model=None, extra=None):
    model = model or MLP()
    twin = copy.deepcopy(model)
    ours = case.make(param_groups(model, sample, case.group2 | (extra or {})), **execution, **sample)
    theirs = case.make_torch(param_groups(twin, sample, case.group2 | (extra or {})), foreach=False, **sample)
    return model, ours, twin, theirs


EXECUTIONS = {"foreach": {"foreach": True}, "for-loop": {"foreach": False}, "fused": {"fused": True}}


@pytest.mark.parametrize("path", list(EXECUTIONS))
@pytest.mark.parametrize(("case", "sample"), TORCH_SAMPLES, ids=ids)
def test_matches_torch(case, sample, path, request):
    """>= 200 steps, two param groups with different lr and weight decay, on each path.

    The fused path runs bit-exact (torch.sqrt's roots): some of these full-batch runs
    are chaotic and blow a last-bit difference up past any tolerance (the default IEEE
    roots are checked against the paper's formula in test_reference instead)."""
    if path == "fused":
        request.getfixturevalue("bit_exact")
        if not case.fuses(sample):  # a chain that cannot fuse: refused, as torch refuses fused=True where it cannot
            with pytest.raises(ValueError, match="fused=True is not supported for this optimizer"):
                _pair(case, sample, EXECUTIONS[path])
            return
    model, ours, twin, theirs = _pair(case, sample, EXECUTIONS[path])
    maximize = sample.get("maximize", False)
    kernel_calls = engine.stats["calls"]
    train(model, ours, PARITY_STEPS, maximize)
    train(twin, theirs, PARITY_STEPS, maximize)
    if path == "fused":  # one call per group and step, but for a lazily created first-step buffer
        assert engine.stats["calls"] - kernel_calls >= 2 * (PARITY_STEPS - 1), "the fused path did not run"
    worst = assert_close(params_of(model), params_of(twin), PARITY_RTOL, f"{case} {sample}")
    record(f"torch parity ({path}): {case.name}", worst)
    # Sanity: the run moved the parameters (a no-op optimizer would match a no-op twin).
    assert not torch.equal(params_of(model)[0], params_of(MLP())[0])


@pytest.mark.parametrize(("case", "sample"), ALL_SAMPLES, ids=ids)
def test_foreach_matches_for_loop(case, sample):
    model = MLP()
    twin = copy.deepcopy(model)
    multi = case.make(param_groups(model, sample, case.group2), foreach=True, **sample)
    loop = case.make(param_groups(twin, sample, case.group2), foreach=False, **sample)
    maximize = sample.get("maximize", False)
    train(model, multi, 100, maximize)
    train(twin, loop, 100, maximize)
    worst = assert_close(params_of(model), params_of(twin), 1e-12, "foreach vs for-loop")
    record(f"foreach vs for-loop: {case.name}", worst)


@pytest.mark.parametrize(("case", "sample"), ALL_SAMPLES, ids=ids)
def test_foreach_matches_for_loop_mixed_dtypes(case, sample):
    """float32 and float64 parameters in one param group."""
    model = MLP(dtypes=(torch.float32, torch.float64))
    twin = copy.deepcopy(model)
    multi = case.make(model.parameters(), foreach=True, **sample)
    loop = case.make(twin.parameters(), foreach=False, **sample)
    maximize = sample.get("maximize", False)
    train(model, multi, 50, maximize)
    train(twin, loop, 50, maximize)
    for ours, theirs in zip(model.parameters(), twin.parameters()):
        assert ours.dtype == theirs.dtype
        rtol = 1e-5 if ours.dtype == torch.float32 else 1e-12
        worst = assert_close([ours.detach()], [theirs.detach()], rtol, f"mixed dtypes, {ours.dtype}")
        record(f"foreach vs for-loop mixed ({ours.dtype}): {case.name}", worst)
    assert {p.dtype for p in model.parameters()} == {torch.float32, torch.float64}


SCHEDULER_STEPS = 100


def _torch_scheduler(name, optimizer, case):
    sched = torch.optim.lr_scheduler
    if name == "StepLR":
        return sched.StepLR(optimizer, step_size=30, gamma=0.5)
    if name == "CosineAnnealingLR":
        return sched.CosineAnnealingLR(optimizer, T_max=SCHEDULER_STEPS // 2, eta_min=1e-4)
    if name == "LambdaLR":
        return sched.LambdaLR(optimizer, lambda step: 1.0 / (1.0 + 0.05 * step))
    if name == "OneCycleLR":
        cycles = any(k in optimizer.defaults for k in ("momentum", "betas"))
        return sched.OneCycleLR(optimizer, max_lr=[0.02, 0.01], total_steps=SCHEDULER_STEPS, cycle_momentum=cycles)
    raise AssertionError(name)


@pytest.mark.parametrize("scheduler", ["StepLR", "CosineAnnealingLR", "OneCycleLR", "LambdaLR"])
@pytest.mark.parametrize("case", TORCH_CASES, ids=ids)
def test_lr_scheduler_drives_like_torch(case, scheduler):
    """The scheduler steps every iteration; OneCycleLR also cycles momentum/betas."""
    sample = case.samples[-1]
    model, ours, twin, theirs = _pair(case, sample, EXECUTIONS["foreach"])
    ours_sched = _torch_scheduler(scheduler, ours, case)
    theirs_sched = _torch_scheduler(scheduler, theirs, case)
    maximize = sample.get("maximize", False)
    seen = []
    train(model, ours, SCHEDULER_STEPS, maximize, ours_sched, hook=lambda i: seen.append(ours.param_groups[0]["lr"]))
    train(twin, theirs, SCHEDULER_STEPS, maximize, theirs_sched)
    assert len(set(seen)) > 1, "the scheduler changed nothing"
    worst = assert_close(params_of(model), params_of(twin), PARITY_RTOL, scheduler)
    record(f"lr scheduler {scheduler}: {case.name}", worst)
    for ours_group, theirs_group in zip(ours.param_groups, theirs.param_groups):
        for key in ("lr", "momentum", "betas"):
            assert ours_group.get(key) == theirs_group.get(key, ours_group.get(key))


_MUTABLE = {"betas": (0.8, 0.99), "momentum": 0.5, "rho": 0.8, "alpha": 0.9, "lr_decay": 0.1, "beta2_decay": -0.5}


@pytest.mark.parametrize("case", TORCH_CASES, ids=ids)
def test_changing_hyperparameters_mid_run(case):
    """param_groups[i]["betas"] / ["momentum"] (and rho, alpha, lr_decay, beta2_decay) read at every step."""
    sample = case.samples[0]
    model, ours, twin, theirs = _pair(case, sample, EXECUTIONS["foreach"])
    changed = []

    def change(optimizer):
        def hook(i):
            if i == 60:
                for key, value in _MUTABLE.items():
                    if key not in theirs.param_groups[0]:
                        continue
                    if key == "momentum" and isinstance(theirs, torch.optim.RMSprop) and not sample.get("momentum"):
                        continue  # torch.optim.RMSprop raises KeyError if momentum becomes > 0 mid-run
                    optimizer.param_groups[0][key] = value
                    if optimizer is ours:
                        changed.append(key)
        return hook

    train(model, ours, PARITY_STEPS, hook=change(ours))
    train(twin, theirs, PARITY_STEPS, hook=change(theirs))
    assert changed
    worst = assert_close(params_of(model), params_of(twin), PARITY_RTOL, f"changed {changed}")
    record(f"mid-run change: {case.name}", worst)
    # And the change mattered: without it the run ends elsewhere.
    unchanged = MLP()
    train(unchanged, case.make(param_groups(unchanged, sample, case.group2), **sample), PARITY_STEPS)
    assert not torch.equal(params_of(unchanged)[0], params_of(model)[0])


@pytest.mark.parametrize("case", TORCH_CASES, ids=ids)
def test_add_param_group_mid_run(case):
    sample = case.samples[-1]
    model, twin = MLP(), None
    twin = copy.deepcopy(model)
    ours = case.make(model.first.parameters(), **sample)
    theirs = case.make_torch(twin.first.parameters(), foreach=False, **sample)
    maximize = sample.get("maximize", False)

    def add(optimizer, m):
        def hook(i):
            if i == 40:
                optimizer.add_param_group({"params": case.accepted(m.second.parameters()), "weight_decay": 0.02})
        return hook

    train(model, ours, 120, maximize, hook=add(ours, model))
    train(twin, theirs, 120, maximize, hook=add(theirs, twin))
    assert len(ours.param_groups) == 2
    assert ours.state[model.second.weight]["step"] == 80
    worst = assert_close(params_of(model), params_of(twin), PARITY_RTOL, "add_param_group")
    record(f"add_param_group: {case.name}", worst)


COMPLEX_STEPS = 60


def _complex_problem(dtype=torch.complex128):
    torch.manual_seed(3)
    z = nn.Parameter(torch.randn(3, 4, dtype=dtype))
    w = nn.Parameter(torch.randn(4, dtype=torch.float64))
    a = torch.randn(20, 3, dtype=dtype)
    y = torch.randn(20, 4, dtype=dtype)

    def loss(params, maximize):
        z, w = params
        value = (a @ z * w - y).abs().pow(2).mean()
        return -value if maximize else value

    return [z, w], loss


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "for-loop"])
@pytest.mark.parametrize(("case", "sample"), [cs for cs in TORCH_SAMPLES if cs[0].supports_complex], ids=ids)
def test_complex_parameters_match_torch(case, sample, foreach):
    params, loss = _complex_problem()
    twin = [p.detach().clone().requires_grad_() for p in params]
    maximize = sample.get("maximize", False)
    groups = lambda ps: [{"params": [ps[0]]}, {"params": [ps[1]], "weight_decay": 0.03}]  # noqa: E731
    ours = case.make(groups(params), foreach=foreach, **sample)
    theirs = case.make_torch(groups(twin), foreach=False, **sample)
    # Fewer steps than elsewhere: on this problem the sign-like RMSprop steps make the
    # dynamics chaotic, so a 1-ulp rounding difference (step ~55) grows ~e^0.4 per step; the samples that reach it are rmsprop with momentum.
    for _ in range(COMPLEX_STEPS):
        for optimizer, ps in ((ours, params), (theirs, twin)):
            optimizer.zero_grad()
            loss(ps, maximize).backward()
            optimizer.step()
    assert params[0].is_complex()
    worst = assert_close([params[0].detach()], [twin[0].detach()], PARITY_RTOL, "complex")
    worst = max(worst, assert_close([params[1].detach()], [twin[1].detach()], PARITY_RTOL, "real"))
    record(f"complex: {case.name}", worst)


def _sparse_run(make, sample, steps=PARITY_STEPS):
    torch.manual_seed(4)
    embedding = nn.Embedding(10, 3, sparse=True).double()
    scale = nn.Parameter(torch.ones(3))  # a dense gradient in the same group
    target = torch.randn(10, 3)
    generator = torch.Generator().manual_seed(5)
    optimizer = make([embedding.weight, scale], **sample)
    maximize = sample.get("maximize", False)
    for _ in range(steps):
        index = torch.randint(0, 10, (4,), generator=generator)
        optimizer.zero_grad()
        loss = (embedding(index) * scale - target[index]).pow(2).sum()
        (-loss if maximize else loss).backward()
        assert embedding.weight.grad.is_sparse and not scale.grad.is_sparse
        optimizer.step()
    return torch.cat([embedding.weight.detach().flatten(), scale.detach()])


def _dense_only(sample):
    return {k: v for k, v in sample.items() if k != "weight_decay"}


@pytest.mark.parametrize(("case", "sample"), [cs for cs in TORCH_SAMPLES if cs[0].supports_sparse], ids=ids)
def test_sparse_gradients_match_torch(case, sample):
    """nn.Embedding(sparse=True) beside a dense parameter in one group; weight decay is
    dense, so it is left out."""
    sample = _dense_only(sample)
    ours = _sparse_run(case.make, sample)
    theirs = _sparse_run(case.make_torch, sample)
    worst = assert_close([ours], [theirs], PARITY_RTOL, "sparse")
    record(f"sparse: {case.name}", worst)


@pytest.mark.parametrize("case", [c for c in CASES if not c.supports_sparse], ids=ids)
def test_sparse_gradients_rejected(case):
    embedding = nn.Embedding(10, 3, sparse=True).double()
    before = embedding.weight.detach().clone()
    optimizer = case.make(embedding.parameters(), **case.samples[0])
    embedding(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match=r"does not support sparse gradients"):
        optimizer.step()
    assert torch.equal(embedding.weight.detach(), before)
    assert not optimizer.state
