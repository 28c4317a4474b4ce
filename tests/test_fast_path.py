"""The fused path (one compiled C kernel per chain) against the eager paths and torch.optim.

The eager `TensorList` paths are the reference. In its bit-exact mode (torch.sqrt's
square roots, torch's global norm) the fused path must give their bits, for every alias
and option: that proves the kernel's arithmetic is theirs (a chain with per-tensor sums,
MARS's, LAMB's, LARS's, the cautious mask's, to rounding: `per_tensor`). By default (IEEE roots, the
norm in the kernel) it must equal them to rounding; test_reference checks it against the
papers' formulas at the parity tolerance. It takes over by default only where it pays.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch

import optimlab
from optimlab.fused import cpu, engine
from helpers import MLP, PARITY_STEPS, assert_close, param_groups, params_of, train
from optimizer_cases import ALL_SAMPLES, CASES_BY_NAME, SAMPLES, ids

pytestmark = pytest.mark.skipif(not engine.available(), reason="no C compiler for the fused path")


def _kernel_calls():
    return engine.stats["calls"]


def per_tensor(optimizer) -> bool:
    """Whether the chain measures sums (MARS's per-tensor norms, Prodigy's bucket sums): its
    kernel then takes IEEE square roots and sums in its own order, so bit-exact mode gives
    the eager path's numbers to rounding only (`PER_TENSOR_RTOL`)."""
    specs = engine.describe(optimizer.transform, optimizer.param_groups[0])
    return any(spec.measures for spec, _ in specs or ())


PER_TENSOR_RTOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def bucket_sums(optimizer) -> bool:
    """Whether the chain measures sums over the whole bucket (Prodigy's and D-Adaptation's
    distance estimates): one kernel call per bucket, so a bucket of several dtypes steps
    eagerly; and its estimate feeds back into every later step, so its trajectories are
    chaotic (a last-bit difference grows ~10x every 10 steps at lr=1): the kernel is
    compared with the eager path step by step, from the same state."""
    specs = engine.describe(optimizer.transform, optimizer.param_groups[0])
    return any(spec.bucket_sums for spec, _ in specs or ())


@pytest.mark.usefixtures("float64", "bit_exact")
@pytest.mark.parametrize(("case", "sample"), SAMPLES, ids=ids)
def test_fused_matches_eager(case, sample):
    model = MLP()
    twin = copy.deepcopy(model)
    fused = case.make(param_groups(model, sample, case.group2), fused=True, **sample)
    eager = case.make(param_groups(twin, sample, case.group2), foreach=True, **sample)
    maximize = sample.get("maximize", False)
    if bucket_sums(fused):
        calls = _kernel_calls()
        for _ in range(PARITY_STEPS):
            model.load_state_dict(twin.state_dict())
            fused.load_state_dict(copy.deepcopy(eager.state_dict()))  # not sharing its tensors
            train(model, fused, 1, maximize)
            train(twin, eager, 1, maximize)
            assert_close(params_of(model), params_of(twin), PER_TENSOR_RTOL[torch.float64], case.name)
            for p, q in zip(model.parameters(), twin.parameters()):  # the estimate the kernel handed back too
                ours, theirs = fused.state[p], eager.state[q]
                assert_close([v for _, v in sorted(ours.items()) if isinstance(v, torch.Tensor)],
                             [v for _, v in sorted(theirs.items()) if isinstance(v, torch.Tensor)],
                             PER_TENSOR_RTOL[torch.float64], case.name)
        assert _kernel_calls() - calls == 2 * PARITY_STEPS
        return
    train(model, fused, PARITY_STEPS, maximize)
    train(twin, eager, PARITY_STEPS, maximize)
    if per_tensor(fused):
        assert_close(params_of(model), params_of(twin), PER_TENSOR_RTOL[torch.float64], case.name)
        return
    # Bit for bit: the kernel rounds as torch's kernels do (see optimlab/fused/spec.py).
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)
        for key, value in eager.state[q].items():
            other = fused.state[p][key]
            if isinstance(value, torch.Tensor):
                assert other.dtype == value.dtype and torch.equal(other, value), key
            else:
                assert other == value


#: The samples whose chain does not fuse whole (Muon's orthogonalization, SOAP's rotations, ...).
UNFUSED = [(case, sample) for case, sample in ALL_SAMPLES if not case.fuses(sample)]


@pytest.mark.usefixtures("float64", "bit_exact")
@pytest.mark.parametrize(("case", "sample"), UNFUSED, ids=ids)
def test_runs_around_parts_that_are_not_elementwise_fuse_with_the_eager_bits(case, sample, monkeypatch):
    """By default the elementwise runs of such a chain (Muon's momentum before the
    orthogonalization, the decay and the step after it) fuse, a kernel call each, and the
    parameters and state are the eager path's, bit for bit."""
    monkeypatch.setattr(engine, "AUTO_WORK", 0)
    monkeypatch.setattr(engine, "SEGMENTS_MIN", 0)  # the kernels from the first step
    model = MLP()
    twin = copy.deepcopy(model)
    ours = case.make(param_groups(model, sample, case.group2), **sample)
    eager = case.make(param_groups(twin, sample, case.group2), foreach=True, **sample)
    first = ours.param_groups[0]
    runs = engine.segments(ours.transform, first, first["params"][:1])  # (a partition's: the first's label)
    fused_runs = 0 if runs is None else sum(specs is not None for _, specs in runs)
    maximize = sample.get("maximize", False)
    calls = _kernel_calls()
    train(model, ours, 20, maximize)
    if fused_runs:  # every step, but where a run's buffer is made lazily by its first one
        assert _kernel_calls() - calls >= fused_runs * len(ours.param_groups) * 19, case.name
    train(twin, eager, 20, maximize)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q), case.name
        for key, value in eager.state[q].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(ours.state[p][key], value), key


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("zeros", ["first steps", "first tensor", "always"])
def test_dadapt_adam_steps_in_one_pass_once_an_element_proves_the_step(zeros):
    """D-Adaptation Adam's kernel looks for an element whose s is not 0 (its witness: then the
    step is taken) and steps and sums in one pass. With zero gradients for the first steps,
    for the first tensor, or always (no witness: the moments move, the parameters do not),
    each step equals the eager one from the same state, and the estimate the kernel hands
    back too."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(300,), (5, 7), (4100,)]  # the third spans two chunks of the kernel
    params = [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in shapes]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    fused = optimlab.DAdaptAdam(params, fused=True)
    eager = optimlab.DAdaptAdam(twins, foreach=True)
    start = [p.detach().clone() for p in params]
    for step in range(6):
        grads = [torch.randn(shape, generator=generator) for shape in shapes]
        if zeros == "always" or (zeros == "first steps" and step < 3):
            grads = [torch.zeros_like(g) for g in grads]
        elif zeros == "first tensor":
            grads[0].zero_()
        fused.load_state_dict(copy.deepcopy(eager.state_dict()))
        with torch.no_grad():
            for p, q in zip(params, twins):
                p.copy_(q)
        for p, q, g in zip(params, twins, grads):
            p.grad, q.grad = g.clone(), g.clone()
        calls = _kernel_calls()
        fused.step()
        eager.step()
        assert _kernel_calls() - calls == 1
        assert_close(params_of_list(params), params_of_list(twins), PER_TENSOR_RTOL[torch.float64], zeros)
        for p, q in zip(params, twins):
            for key in ("d", "numerator_weighted", "exp_avg", "exp_avg_sq", "s"):
                assert_close([fused.state[p][key]], [eager.state[q][key]], PER_TENSOR_RTOL[torch.float64], key)
    if zeros == "always":
        assert all(torch.equal(p, s) for p, s in zip(params, start))
    else:
        assert not any(torch.equal(p, s) for p, s in zip(params[1:], start[1:]))


def params_of_list(params):
    return [p.detach().clone() for p in params]


@pytest.mark.usefixtures("float64")
def test_muon_steps_with_two_kernel_calls_around_its_orthogonalization(monkeypatch):
    """Muon's momentum (with Nesterov's look-ahead) is one kernel call, the shape scale,
    decay and step another; the scratch they hand on is reused from step to step."""
    monkeypatch.setattr(engine, "AUTO_WORK", 0)
    monkeypatch.setattr(engine, "SEGMENTS_MIN", 0)
    generator = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(shape, generator=generator, dtype=torch.float64))
              for shape in [(8, 5), (5, 8), (8, 5), (4, 4)]]
    optimizer = optimlab.Muon(params, lr=0.02)
    runs = engine.segments(optimizer.transform, optimizer.param_groups[0])
    assert [specs is not None for _, specs in runs] == [True, False, True]
    pointers = []
    for step in range(3):
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator, dtype=torch.float64)
        calls = _kernel_calls()
        optimizer.step()
        assert _kernel_calls() - calls == 2
        workspace = engine._workspaces[optimizer.transform]
        pointers.append(sorted(t.data_ptr() for t in workspace._tensors.values()))
    assert pointers[0] == pointers[1] == pointers[2]


@pytest.mark.usefixtures("bit_exact")
@pytest.mark.parametrize(("case", "sample"), SAMPLES, ids=ids)
def test_fused_mixed_dtypes(case, sample):
    """float32 and float64 parameters in one group: one kernel call per dtype, and the
    eager path's bits (test_parity compares the eager paths with each other)."""
    model = MLP(dtypes=(torch.float32, torch.float64))
    twin = copy.deepcopy(model)
    fused = case.make(model.parameters(), fused=True, **sample)
    eager = case.make(twin.parameters(), foreach=True, **sample)
    maximize = sample.get("maximize", False)
    calls = _kernel_calls()
    train(model, fused, 50, maximize)
    if bucket_sums(fused):  # one kernel call per bucket: two dtypes step eagerly
        assert _kernel_calls() == calls
    else:
        assert _kernel_calls() - calls >= 2 * 49
    train(twin, eager, 50, maximize)
    assert {p.dtype for p in model.parameters()} == {torch.float32, torch.float64}
    for ours, theirs in zip(model.parameters(), twin.parameters()):
        if per_tensor(fused):  # float32's rounding (the float64 layer's gradients come through the float32
            # one), relative to the tensor's scale: the norms are summed in other orders
            worst = ((ours - theirs).abs().max() / theirs.abs().max()).item()
            assert worst < PER_TENSOR_RTOL[torch.float32], (case.name, worst)
        else:
            assert torch.equal(ours, theirs), ours.dtype  # float32 too: bit for bit


@pytest.fixture(params=["bit-exact", "default"])
def mode(request, monkeypatch):
    """The fused path's mode; `same` compares its result with the eager path's."""
    monkeypatch.setattr(engine, "bit_exact", request.param == "bit-exact")
    return request.param


def same(mode, ours, theirs):
    """Bit for bit in bit-exact mode, else to rounding (float32: a few ulps)."""
    for p, q in zip(ours, theirs):
        if mode == "bit-exact":
            assert torch.equal(p, q)
        else:
            tolerance = 1e-12 if p.dtype == torch.float64 else 1e-5
            torch.testing.assert_close(p, q, rtol=tolerance, atol=tolerance)


FUSED_NAMES = sorted({case.name for case, _ in SAMPLES})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", FUSED_NAMES)
def test_every_name_fused_on_a_larger_model(name, dtype, mode):
    """Tensors large enough for the parallel region (several threads, uneven splits)."""
    torch.manual_seed(0)
    shapes = [(300, 257), (1,), (70_001,), (33, 3)]
    ours = [torch.randn(s, dtype=dtype, requires_grad=True) for s in shapes]
    twin = [p.detach().clone().requires_grad_() for p in ours]
    kwargs = {"lr": 1e-2} if name not in ("adadelta",) else {}
    case = CASES_BY_NAME[name]
    fused = case.ready(optimlab.create(name, ours, fused=True, **kwargs))
    eager = case.ready(optimlab.create(name, twin, foreach=True, **kwargs))
    for _ in range(20):
        grads = [torch.randn_like(p) for p in ours]
        for p, q, g in zip(ours, twin, grads):
            p.grad, q.grad = g.clone(), g.clone()
        fused.step()
        eager.step()
    same("default" if per_tensor(fused) else mode, ours, twin)


def _adamw_chain(**hyperparams):
    transform = optimlab.chain(
        optimlab.maximize(), optimlab.clip_by_global_norm(0.5), optimlab.scale_by_adam(),
        optimlab.add_decayed_weights(0.01), optimlab.scale_by_learning_rate(1e-2),
    )
    return transform


@pytest.mark.usefixtures("float64")
def test_composed_chain_is_one_kernel(mode):
    """Global-norm clipping + Adam + decoupled decay: one kernel call per step."""
    model = MLP()
    twin = copy.deepcopy(model)
    fused = optimlab.Optimizer(model.parameters(), _adamw_chain(), fused=True)
    eager = optimlab.Optimizer(twin.parameters(), _adamw_chain(), foreach=True)
    calls = _kernel_calls()
    train(model, fused, 100)
    train(twin, eager, 100)
    assert _kernel_calls() - calls == 100
    same(mode, model.parameters(), twin.parameters())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_global_norm_in_the_kernel(dtype):
    """The kernel's global norm: the float64 norm to rounding, and the same bits whatever
    the number of threads (sums of fixed chunks, added in a fixed order)."""
    torch.manual_seed(0)
    shapes = [(300, 257), (1,), (0,), (70_001,), (33, 3), (4096,), (0, 5), (5000,)]
    grads = [torch.randn(s, dtype=dtype) * 10 ** (i % 3) for i, s in enumerate(shapes)]
    norm = torch.cat([g.double().flatten() for g in grads]).norm().item()
    steps = []
    for threads in (1, 2, 3):
        params = [torch.zeros_like(g, requires_grad=True) for g in grads]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        transform = optimlab.chain(optimlab.clip_by_global_norm(1.0), optimlab.scale_by_learning_rate(1.0))
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            optimlab.Optimizer(params, transform, fused=True).step()
        finally:
            torch.set_num_threads(previous)
        steps.append(params)
        for p, g in zip(params, grads):  # p = -g * max_norm / (norm + 1e-6)
            torch.testing.assert_close(-p.double(), g.double() / (norm + 1e-6), rtol=2e-7 if dtype == torch.float32 else 1e-14, atol=0)
    for params in steps[1:]:
        assert all(torch.equal(p, q) for p, q in zip(params, steps[0]))


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_global_norm_of_non_finite_gradients_as_torch(bad):
    """An inf or NaN gradient: the kernel's clipping gives torch's result (inf norm: the
    step is 0, NaN where the gradient is inf; NaN norm: NaN everywhere)."""
    torch.manual_seed(0)
    grads = [torch.randn(70_001), torch.randn(300, 257)]
    grads[0][123] = bad
    results = []
    for options in ({"fused": True}, {"foreach": True}):
        params = [torch.ones_like(g, requires_grad=True) for g in grads]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        transform = optimlab.chain(optimlab.clip_by_global_norm(1.0), optimlab.scale_by_learning_rate(0.1))
        calls = _kernel_calls()
        optimlab.Optimizer(params, transform, **options).step()
        assert (_kernel_calls() - calls == 1) == ("fused" in options)
        results.append(params)
    for ours, theirs in zip(*results):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0, equal_nan=True)
    assert results[0][0][123].isnan() and (results[0][1] == 1).all() == (bad == float("inf"))


@pytest.mark.usefixtures("float64")
def test_nested_chains_and_clip_by_value():
    def transform():
        inner = optimlab.chain(optimlab.clip_by_value(0.1), optimlab.trace(0.9), optimlab.trace(0.9))
        return optimlab.chain(inner, optimlab.scale_by_rms(), optimlab.scale_by_learning_rate(1e-2))

    model = MLP()
    twin = copy.deepcopy(model)
    fused = optimlab.Optimizer(model.parameters(), transform(), fused=True)
    eager = optimlab.Optimizer(twin.parameters(), transform(), foreach=False)
    train(model, fused, 60)
    train(twin, eager, 60)
    assert_close(params_of(model), params_of(twin), 1e-12, "nested chain")
    assert set(fused.state[model.first.weight]) == {"step", "1.momentum_buffer", "2.momentum_buffer", "square_avg"}


@pytest.mark.usefixtures("float64", "bit_exact")
def test_clip_after_a_preconditioner_fuses_as_two_runs(monkeypatch):
    """A global norm of updates that one kernel would have to compute mid-loop: refused
    with fused=True; by default the chain fuses as two runs, Adam's moments, then the
    clipping and the step (the norm measured over the first kernel's updates), with the
    eager path's bits."""
    def transform():
        return optimlab.chain(optimlab.scale_by_adam(), optimlab.clip_by_global_norm(0.1),
                              optimlab.scale_by_learning_rate(1e-2))

    model = MLP()
    twin = copy.deepcopy(model)
    with pytest.raises(ValueError, match=r"fused=True is not supported for this optimizer: clip_by_global_norm"
                                         r"\(max_norm=0.1\) measures the norm of the updates after scale_by_adam"):
        optimlab.Optimizer(model.parameters(), transform(), fused=True)
    monkeypatch.setattr(engine, "AUTO_WORK", 0)
    monkeypatch.setattr(engine, "SEGMENTS_MIN", 0)  # the default path takes its kernels at once
    optimizer = optimlab.Optimizer(model.parameters(), transform())
    eager = optimlab.Optimizer(twin.parameters(), transform(), foreach=True)
    calls = _kernel_calls()
    train(model, optimizer, 5)
    assert _kernel_calls() - calls == 2 * 5
    train(twin, eager, 5)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)


@pytest.mark.usefixtures("float64")
def test_params_with_grad_none_are_skipped():
    model = MLP()
    twin = copy.deepcopy(model)
    fused = optimlab.Adam(model.parameters(), lr=1e-2, fused=True)
    eager = optimlab.Adam(twin.parameters(), lr=1e-2, foreach=True)
    for m, optimizer in ((model, fused), (twin, eager)):
        for step in range(30):
            optimizer.zero_grad()
            m.loss().backward()
            if step % 3 == 0:
                m.second.bias.grad = None
            optimizer.step()
    assert_close(params_of(model), params_of(twin), 1e-12, "grad None")
    assert fused.state[model.second.bias]["step"] == eager.state[twin.second.bias]["step"] == 20


def test_hyperparameters_change_every_step_without_recompiling():
    """A scheduler on lr, betas and weight decay: the same kernel all along (a weight
    decay of 0 is another structure, the kernel without the decay: built once)."""
    model = MLP()
    optimizer = optimlab.AdamW(model.parameters(), lr=1e-2, fused=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=101)
    for weight_decay in (0.0, 0.01):
        optimizer.param_groups[0]["weight_decay"] = weight_decay
        train(model, optimizer, 1)
    kernels, compiles, loads = len(cpu._kernels), cpu.stats["compiles"], cpu.stats["disk_loads"]
    lookups = cpu.stats["lookups"]
    seen = set()
    for i in range(100):
        optimizer.param_groups[0]["weight_decay"] = 0.01 * (i % 7)
        optimizer.param_groups[0]["eps"] = 1e-8 * (1 + i)
        seen.add((optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["betas"]))
        train(model, optimizer, 1)
        scheduler.step()
    assert len(seen) == 100
    assert cpu.stats["lookups"] - lookups == 100
    assert (len(cpu._kernels), cpu.stats["compiles"], cpu.stats["disk_loads"]) == (kernels, compiles, loads)


def test_state_dict_resume_is_bit_exact():
    model = MLP(dtypes=(torch.float32, torch.float64))
    optimizer = optimlab.NAdam(model.parameters(), lr=1e-2, fused=True)
    train(model, optimizer, 20)
    saved_model, saved = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    train(model, optimizer, 20)
    resumed = MLP(dtypes=(torch.float32, torch.float64))
    resumed.load_state_dict(saved_model)
    again = optimlab.NAdam(resumed.parameters(), lr=1e-2, fused=True)
    again.load_state_dict(saved)
    train(resumed, again, 20)
    for p, q in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name", ["muon", "soap"])  # (muon: MuonWithAdamW)
def test_a_chain_stepped_in_runs_resumes_bit_exactly(name, monkeypatch):
    """Its runs' kernels, the eager parts between them and the scratch they share: a
    checkpoint mid-run, loaded into a fresh optimizer, continues as the run does."""
    monkeypatch.setattr(engine, "AUTO_WORK", 0)
    monkeypatch.setattr(engine, "SEGMENTS_MIN", 0)
    model = MLP()
    optimizer = optimlab.create(name, model.parameters(), lr=1e-2)
    calls = _kernel_calls()
    train(model, optimizer, 10)
    assert _kernel_calls() > calls
    saved_model, saved = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    train(model, optimizer, 10)
    resumed = MLP()
    resumed.load_state_dict(saved_model)
    again = optimlab.create(name, resumed.parameters(), lr=1e-2)
    again.load_state_dict(saved)
    train(resumed, again, 10)
    for p, q in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_auto_builds_the_kernel_only_where_it_pays(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTIMLAB_CACHE_DIR", str(tmp_path))  # nothing built yet
    monkeypatch.setattr(cpu, "_kernels", {})
    monkeypatch.setattr(engine, "AUTO_WORK", 1 << 20)
    calls = _kernel_calls()
    model = MLP()
    train(model, optimlab.Adam(model.parameters()), 50)  # tiny model, short run: eager
    assert _kernel_calls() == calls and not list(tmp_path.iterdir())
    big = [torch.zeros(1 << 20, requires_grad=True), torch.zeros(10, requires_grad=True)]
    for p in big:
        p.grad = torch.ones_like(p)
    optimlab.Adam(big).step()  # large: built and used from the first step
    assert _kernel_calls() == calls + 1
    for explicit in ({"foreach": True}, {"foreach": False}, {"fused": False}):
        optimlab.Adam(big, **explicit).step()
        assert _kernel_calls() == calls + 1
    # Built and cached now, the kernel still does not take over small models early: the
    # path, and so the numbers, never depend on what the cache holds.
    small, twin = (MLP(dtypes=(torch.float32, torch.float32)) for _ in range(2))
    train(small, optimlab.Adam(small.parameters()), 5)
    assert _kernel_calls() == calls + 1
    train(twin, optimlab.Adam(twin.parameters(), foreach=True), 5)
    assert all(torch.equal(p, q) for p, q in zip(small.parameters(), twin.parameters()))
    assert engine.worthwhile([torch.zeros(100)] * 4, 1) is False
    assert engine.worthwhile([torch.zeros(100)] * 4, 10**6) is True


@pytest.mark.parametrize("kind", ["non-contiguous", "sparse"])
def test_unsupported_tensors_fall_back_to_eager(kind):
    torch.manual_seed(0)
    if kind == "non-contiguous":
        make = lambda: [torch.randn(8, 6)[:, ::2].clone().t().requires_grad_()]  # noqa: E731
        make_grad = lambda p: torch.randn(p.shape[1], p.shape[0]).t()  # noqa: E731
    else:
        make = lambda: [torch.randn(10, 3, requires_grad=True)]  # noqa: E731
        make_grad = lambda p: torch.sparse_coo_tensor([[1, 4]], torch.randn(2, 3), (10, 3))  # noqa: E731
    ours = make()
    twin = [p.detach().clone().requires_grad_() for p in ours]
    cls = optimlab.SGD if kind == "sparse" else optimlab.Adam
    fused, eager = cls(ours, lr=0.1, fused=True), cls(twin, lr=0.1, foreach=False)
    calls = _kernel_calls()
    for _ in range(5):
        grads = [make_grad(p) for p in ours]
        for p, q, g in zip(ours, twin, grads):
            p.grad, q.grad = g.clone(), g.clone()
        fused.step()
        eager.step()
    assert _kernel_calls() == calls
    assert torch.equal(ours[0], twin[0])


def test_fused_and_foreach_together_raise():
    with pytest.raises(ValueError, match="fused=True and foreach=True"):
        optimlab.Adam(MLP().parameters(), fused=True, foreach=True)


def test_kernels_are_cached_across_processes(tmp_path):
    script = textwrap.dedent("""
        import torch, optimlab
        from optimlab.fused import cpu, engine
        p = torch.zeros(1000, requires_grad=True)
        p.grad = torch.ones(1000)
        optimlab.RAdam([p], lr=0.1, fused=True).step()
        print(cpu.stats["compiles"], cpu.stats["disk_loads"], engine.stats["calls"])
    """)
    env = {**os.environ, "OPTIMLAB_CACHE_DIR": str(tmp_path)}
    runs = [
        subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout.split()
        for _ in range(2)
    ]
    assert runs == [["1", "0", "1"], ["0", "1", "1"]]
    assert len(list(tmp_path.glob("*.so"))) == 1


@pytest.mark.parametrize("setting", ["1", None])
def test_bit_exact_environment_variable(setting):
    """OPTIMLAB_BIT_EXACT=1, read at import, gives the eager path's bits (float32 Adam);
    unset, the IEEE kernel does not, where torch.sqrt is not IEEE (MKL, x86 builds)."""
    script = textwrap.dedent("""
        import torch, optimlab
        from optimlab.fused import cpu, engine
        torch.manual_seed(0)
        ours = torch.randn(100_000, requires_grad=True)
        twin = ours.detach().clone().requires_grad_()
        fused, eager = optimlab.Adam([ours], fused=True), optimlab.Adam([twin], foreach=True)
        for _ in range(3):
            g = torch.randn(100_000)
            ours.grad, twin.grad = g.clone(), g.clone()
            fused.step()
            eager.step()
        ieee_is_torch = cpu._torch_sqrt_routine(torch.float32) is None
        print(engine.bit_exact, engine.stats["calls"], torch.equal(ours, twin), ieee_is_torch)
    """)
    env = {key: value for key, value in os.environ.items() if key != "OPTIMLAB_BIT_EXACT"}
    if setting is not None:
        env["OPTIMLAB_BIT_EXACT"] = setting
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    flag, calls, equal, ieee_is_torch = out.stdout.split()
    assert (flag, calls) == (str(setting == "1"), "3")
    assert equal == str(setting == "1" or ieee_is_torch == "True")


def test_generated_source_is_one_loop_over_all_tensors():
    specs = engine.describe(_adamw_chain(), {**_adamw_chain().hyperparams, "max_norm": 0.5})
    source, slots = cpu.generate([s for s, _ in specs], "float")
    assert source.count("for (int64_t b = s; b < e; b += BLOCK)") == 1  # one pass over memory
    assert source.count("#pragma omp parallel") == 1
    assert source.count("chunk_squares(n, ptrs") == 1  # the norm: one more read of the gradients
    assert "typedef float T;" in source
    assert len(slots) == len(set(slots))


def _lamb(trust_coefficient=1.0):
    """LAMB's chain: the per-tensor trust ratio of Adam's update plus decoupled decay."""
    return optimlab.chain(optimlab.scale_by_adam(), optimlab.add_decayed_weights(0.01),
                          optimlab.scale_by_trust_ratio(trust_coefficient), optimlab.scale_by_learning_rate(1e-2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_per_tensor_norms_in_the_kernel(dtype):
    """Trust ratios measured per tensor by the kernel (norms of the parameter and of the
    update Adam and the decay make): one call per step, the eager path's result to
    rounding, a zero tensor's ratio 1, and the same bits for any number of threads; small
    tensors measured and stepped by one thread each, one larger than `cpu.LOCAL` by all."""
    torch.manual_seed(0)
    shapes = [(300, 257), (1,), (cpu.LOCAL + 1001,), (70_001,), (33, 3), (4096,), (5000,)]
    start = [torch.randn(s, dtype=dtype) for s in shapes]
    start[1].zero_()  # ||p|| = 0: the update is not scaled
    grads = [[torch.randn(s, dtype=dtype) for s in shapes] for _ in range(20)]
    runs = []
    for options, threads in (({"fused": True}, 1), ({"fused": True}, 3), ({"foreach": True}, 3)):
        params = [p.clone().requires_grad_() for p in start]
        optimizer = optimlab.Optimizer(params, _lamb(0.5), **options)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        calls = _kernel_calls()
        try:
            for step_grads in grads:
                for p, g in zip(params, step_grads):
                    p.grad = g.clone()
                optimizer.step()
        finally:
            torch.set_num_threads(previous)
        assert _kernel_calls() - calls == (20 if "fused" in options else 0)
        runs.append(params)
    (one, three, eager) = runs
    assert all(torch.equal(p, q) for p, q in zip(one, three))
    tolerance = 1e-14 if dtype == torch.float64 else 1e-6
    for p, q in zip(one, eager):  # relative to the tensor's scale: the norms are summed in other orders
        assert ((p - q).abs().max() / q.abs().max()).item() < tolerance
    assert not torch.equal(eager[0], start[0]) and not torch.equal(eager[1], start[1])


def test_per_tensor_source_is_a_reduction_pass_then_the_step():
    transform = _lamb()
    specs = engine.describe(transform, transform.hyperparams)
    source, slots = cpu.generate([s for s, _ in specs], "float")
    assert source.count("static void reduce_chunk(") == 1 and source.count("for (int64_t b = s; b < e; b += BLOCK)") == 1
    assert "#define SUMS 1" in source and "sqrt(q[0])" in source
    assert (2, "trust_coefficient") in slots


def test_a_failed_build_is_remembered_per_kernel(tmp_path, monkeypatch):
    """A kernel that does not build is not tried again at every step, and does not stop the
    others from building (the clipping chain fails here; Adam's still runs fused)."""
    monkeypatch.setenv("OPTIMLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cpu, "_kernels", {})
    monkeypatch.setattr(cpu, "_failed", {})
    built = cpu._library
    attempts = []

    def library(source, cache):
        attempts.append("NORM_PASS 1" in source)
        if "NORM_PASS 1" in source:
            raise RuntimeError("compiling a fused kernel failed: (a test's compiler)")
        return built(source, cache)

    monkeypatch.setattr(cpu, "_library", library)
    model, twin = MLP(), MLP()
    clipped = optimlab.Optimizer(model.parameters(), _adamw_chain(), fused=True)
    with pytest.warns(UserWarning, match="fused kernels unavailable, using the eager path"):
        train(model, clipped, 3)
    adam = optimlab.Adam(twin.parameters(), fused=True)
    calls = _kernel_calls()
    train(twin, adam, 3)
    assert attempts == [True, False] and _kernel_calls() - calls == 3


WRAPPED = {
    "lookahead(adamw)": lambda ps, **o: optimlab.Optimizer(ps, optimlab.lookahead(optimlab.adamw(lr=1e-2), k=3), **o),
    "schedule-free AdamW": lambda ps, **o: optimlab.ScheduleFreeAdamW(ps, lr=1e-2, weight_decay=0.01, warmup_steps=5, **o),
    "schedule-free SGD": lambda ps, **o: optimlab.ScheduleFreeSGD(ps, lr=0.1, weight_decay=0.01, **o),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(WRAPPED))
def test_wrappers_fuse_after_their_inner_chain(name, dtype, mode):
    """Lookahead's pull of the slow weights and Schedule-Free's averaging run in the kernel,
    after the inner chain's snippets: one call per step, the eager path's bits."""
    model, twin = MLP(dtypes=(dtype, dtype)), MLP(dtypes=(dtype, dtype))
    twin.load_state_dict(model.state_dict())
    fused, eager = (WRAPPED[name](m.parameters(), **o) for m, o in ((model, {"fused": True}), (twin, {"foreach": True})))
    for optimizer in (fused, eager):
        getattr(optimizer, "train", lambda: None)()
    calls = _kernel_calls()
    train(model, fused, 12)
    train(twin, eager, 12)
    assert _kernel_calls() - calls == 12
    for optimizer in (fused, eager):
        getattr(optimizer, "eval", lambda: None)()
    same(mode, model.parameters(), twin.parameters())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_accumulation_applies_its_steps_with_the_inner_kernel(dtype, mode, monkeypatch):
    """multi_steps on the default path: every k-th call runs the inner chain's kernel on the
    mean gradient, the others only accumulate; the eager path's bits (bit-exact mode)."""
    monkeypatch.setattr(engine, "AUTO_WORK", 1)  # the kernel pays from the first step
    model, twin = MLP(dtypes=(dtype, dtype)), MLP(dtypes=(dtype, dtype))
    twin.load_state_dict(model.state_dict())
    chain = lambda: optimlab.multi_steps(optimlab.adamw(lr=1e-2), every_k=3)  # noqa: E731
    default, eager = optimlab.Optimizer(model.parameters(), chain()), optimlab.Optimizer(twin.parameters(), chain(),
                                                                                          foreach=True)
    calls = _kernel_calls()
    train(model, default, 12)
    assert _kernel_calls() - calls == 4
    train(twin, eager, 12)
    assert _kernel_calls() - calls == 4
    same(mode, model.parameters(), twin.parameters())


@pytest.mark.skipif(not cpu.available() or "gcc" not in os.path.basename(cpu._toolchain()[0]),
                    reason="needs gcc's vectorization report")
@pytest.mark.parametrize("name", FUSED_NAMES)
def test_every_kernels_loop_vectorizes(name, tmp_path):
    """gcc's own report, not a timing: the per-element loops of each catalog chain's kernel
    (the step's and, where it measures sums, the measuring pass's) are vectorized (a select around a helper call, for one, stopped ADOPT's at 2.3x Adam's step)."""
    optimizer = optimlab.create(name, [torch.zeros(3, 3, requires_grad=True)])
    specs = [spec for spec, _ in engine.describe(optimizer.transform, optimizer.param_groups[0])]
    source = cpu.generate(specs, "float")
    source = source[0] if isinstance(source, tuple) else source
    (tmp_path / "kernel.c").write_text(source)
    report = subprocess.run([cpu._toolchain()[0], *cpu._FLAGS, "-fopt-info-vec-all", "kernel.c", "-o", "kernel.so"],
                            cwd=tmp_path, capture_output=True, text=True, check=True).stderr
    loops = [n for n, line in enumerate(source.splitlines(), 1)  # the step's, and the measuring pass's
             if "for (int64_t i = i0; i < i1; i++) {" in line or "for (int l = 0; l < lanes; l++) {" in line]
    vectorized = [n for n in loops if re.search(rf"kernel\.c:{n}:\d+: optimized: loop vectorized", report)]
    # A loop gcc reports nothing of is dead code (a witnessed kernel steps chunk by chunk, not in shares).
    kept = [n for n in loops if re.search(rf"kernel\.c:{n}:\d+:", report)]
    assert vectorized and vectorized == kept, report
