"""The fused path on a CUDA GPU (skipped without one; CI has none, a GPU session runs it).

Oracles: the CPU kernel (same loop body, IEEE arithmetic on both: the GPU kernel must give
its bits), the eager path on the GPU, and torch.optim's twin on the GPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import optimlab
from optimlab.fused import cuda, engine
from helpers import PARITY_RTOL, assert_close
from optimizer_cases import SAMPLES, ids

pytestmark = pytest.mark.skipif(not cuda.available(), reason="needs a CUDA GPU and torch's NVRTC")

GPU = torch.device("cuda")
CPU = torch.device("cpu")
#: 5,153 elements: chunks of 2,048 that span several tensors, an empty and a 1-element one.
SHAPES = [(3000,), (7, 5), (0,), (1,), (64, 33), (5,)]
STEPS = 20


def _params(dtypes, device):
    generator = torch.Generator().manual_seed(0)
    return [
        torch.randn(shape, generator=generator, dtype=dtypes[i % len(dtypes)]).to(device).requires_grad_()
        for i, shape in enumerate(SHAPES)
    ]


def _groups(params, sample, group2):
    second = {"params": params[3:], "weight_decay": 0.03, **group2}
    if isinstance(sample.get("lr"), (int, float)):
        second["lr"] = sample["lr"] * 0.5
    return [{"params": params[:3]}, second]


def _run(make, device, dtypes=(torch.float64,), steps=STEPS):
    """``steps`` steps on ``device`` with `_gradients`."""
    params = _params(dtypes, device)
    optimizer = make(params)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in params:
            noise = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(device)
            p.grad = p.detach().mul(0.5).add_(noise)
        optimizer.step()
    return params, optimizer


def _fused_or_skip(case, sample):
    probe = case.make([torch.zeros(2, requires_grad=True)], **sample)
    specs = engine.describe(probe.transform, probe.param_groups[0])
    if specs is None:
        pytest.skip(f"{case.name} has no elementwise kernel")
    if any(spec.per_tensor for spec, _ in specs):
        pytest.skip(f"{case.name}'s per-tensor sums run on the CPU kernel only (a GPU steps it eagerly)")


def _assert_same_state(a, a_params, b, b_params):
    for p, q in zip(a_params, b_params):
        assert a.state[p].keys() == b.state[q].keys()
        for key, value in a.state[p].items():
            other = b.state[q][key]
            if isinstance(value, torch.Tensor):
                assert torch.equal(value.cpu(), other.cpu()), key
            else:
                assert value == other, key


def _lockstep(make, dtype):
    """A CPU and a GPU run from the same state through the same gradients. The first step
    is the CPU's (possibly the eager path, for a buffer made at the first step, whose CPU
    square roots are MKL's, not IEEE); the GPU run then takes its params and state."""
    cpu_params = _params((dtype,), CPU)
    gpu_params = [p.detach().to(GPU).requires_grad_() for p in cpu_params]
    cpu, gpu = make(cpu_params), make(gpu_params)
    generator = torch.Generator().manual_seed(1)
    for step in range(STEPS):
        for p, q in zip(cpu_params, gpu_params):
            noise = torch.randn(p.shape, generator=generator, dtype=dtype)
            p.grad = p.detach().mul(0.5).add_(noise)
            q.grad = q.detach().mul(0.5).add_(noise.to(GPU))
        cpu.step()
        if step == 0:
            with torch.no_grad():
                for p, q in zip(cpu_params, gpu_params):
                    q.copy_(p)
            gpu.load_state_dict(cpu.state_dict())
        else:
            gpu.step()
    return cpu_params, cpu, gpu_params, gpu


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("case", "sample"), SAMPLES, ids=ids)
def test_gpu_kernel_gives_the_cpu_kernels_bits(case, sample, dtype):
    _fused_or_skip(case, sample)
    make = lambda params: case.make(_groups(params, sample, case.group2), fused=True, **sample)  # noqa: E731
    calls = cuda.stats["launches"]
    cpu_params, cpu, gpu_params, gpu = _lockstep(make, dtype)
    assert cuda.stats["launches"] - calls == 2 * (STEPS - 1), "the GPU kernel did not run"
    for p, q in zip(gpu_params, cpu_params):
        assert torch.equal(p.detach().cpu(), q.detach())
    _assert_same_state(gpu, gpu_params, cpu, cpu_params)


@pytest.mark.usefixtures("float64")  # torch.optim.NAdam keeps mu_product in the default dtype
@pytest.mark.parametrize(("case", "sample"), SAMPLES, ids=ids)
def test_gpu_kernel_matches_the_eager_path_and_torch(case, sample):
    _fused_or_skip(case, sample)
    groups = lambda params: _groups(params, sample, case.group2)  # noqa: E731
    fused, _ = _run(lambda params: case.make(groups(params), fused=True, **sample), GPU)
    eager, _ = _run(lambda params: case.make(groups(params), foreach=True, **sample), GPU)
    assert_close(fused, eager, PARITY_RTOL, f"{case.name} GPU fused vs eager")
    if case.torch_cls is not None:
        twin, _ = _run(lambda params: case.make_torch(groups(params), foreach=True, **sample), GPU)
        assert_close(fused, twin, PARITY_RTOL, f"{case.name} GPU fused vs torch.optim")


def _clipped_adamw(params, **options):
    transform = optimlab.chain(
        optimlab.clip_by_global_norm(0.5), optimlab.scale_by_adam(),
        optimlab.add_decayed_weights(0.01), optimlab.scale_by_learning_rate(1e-2),
    )
    return optimlab.Optimizer(params, transform, **options)


@pytest.mark.parametrize("dtypes", [(torch.float64,), (torch.float32, torch.float64)], ids=["float64", "mixed"])
def test_clipping_chain_on_the_gpu(dtypes):
    """The norm is torch's on the device (summed in another order than the CPU kernel's)."""
    fused, _ = _run(lambda params: _clipped_adamw(params, fused=True), GPU, dtypes)
    eager, _ = _run(lambda params: _clipped_adamw(params, foreach=True), GPU, dtypes)
    on_cpu, _ = _run(lambda params: _clipped_adamw(params, fused=True), CPU, dtypes)
    # With a float32 tensor the norm is float32 (its last bits depend on the summation
    # order of each device), and elements near zero (a step of lr=1e-2 crosses it) are
    # compared absolutely.
    if torch.float32 in dtypes:
        tolerance = {"rtol": 1e-5, "atol": 1e-6}
    else:
        tolerance = {"rtol": PARITY_RTOL, "atol": 1e-14}
    for a, b, c in zip(fused, eager, on_cpu):
        torch.testing.assert_close(a, b, **tolerance, msg=lambda m: f"GPU fused vs GPU eager: {m}")
        torch.testing.assert_close(a.cpu(), c, **tolerance, msg=lambda m: f"GPU fused vs CPU fused: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_global_norm_in_the_kernel(dtype):
    """clip + plain step: p - lr * g * min(1, c / (|g| + 1e-6)), against the float64 norm,
    and the same bits on a second run (the partial sums are added in a fixed order)."""
    def run():
        generator = torch.Generator().manual_seed(3)
        host = [torch.randn(shape, generator=generator, dtype=dtype) for shape in [*SHAPES, (100_000,)]]
        params = [h.to(GPU).requires_grad_() for h in host]
        grads = [torch.randn(h.shape, generator=generator, dtype=dtype) for h in host]
        for p, g in zip(params, grads):
            p.grad = g.to(GPU)
        transform = optimlab.chain(optimlab.clip_by_global_norm(0.5), optimlab.scale_by_learning_rate(0.1))
        optimizer = optimlab.Optimizer(params, transform, fused=True)
        optimizer.step()
        return host, grads, [p.detach().cpu() for p in params]

    host, grads, stepped = run()
    norm = torch.linalg.vector_norm(torch.cat([g.double().flatten() for g in grads])).item()
    scale = min(1.0, 0.5 / (norm + 1e-6))
    tolerance = {torch.float32: {"rtol": 2e-6, "atol": 1e-7}, torch.float64: {"rtol": 1e-14, "atol": 1e-16}}[dtype]
    for h, g, p in zip(host, grads, stepped):
        torch.testing.assert_close(p.double(), h.double() - 0.1 * scale * g.double(), **tolerance)
    assert all(torch.equal(a, b) for a, b in zip(stepped, run()[2]))


def test_one_launch_per_step_no_sync_no_recompile():
    """A scheduler changes lr every step: the same kernel, one launch per step (and
    dtype), and no host-device synchronization (torch's sync debug mode raises on one)."""
    params, optimizer = _run(lambda params: _clipped_adamw(params, fused=True), GPU, steps=2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.9**step)
    kernels, calls = len(cuda._kernels), cuda.stats["launches"]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(5):
            optimizer.step()
            scheduler.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(cuda._kernels) == kernels
    assert cuda.stats["launches"] - calls == 5 * len(optimizer.param_groups)


def test_large_tensor_against_torch_fused_adam():
    """One 3M-element tensor (many chunks, many blocks) against torch's own fused kernel."""
    generator = torch.Generator(device=GPU).manual_seed(0)
    ours = torch.randn(3_000_000, device=GPU, generator=generator, requires_grad=True)
    theirs = ours.detach().clone().requires_grad_()
    a = optimlab.AdamW([ours], lr=1e-3, fused=True)
    b = torch.optim.AdamW([theirs], lr=1e-3, fused=True)
    for _ in range(10):
        grad = torch.randn(ours.shape, device=GPU, generator=generator)
        ours.grad, theirs.grad = grad, grad.clone()
        a.step()
        b.step()
    # float32 rounding: the two kernels order their operations differently
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-5, atol=1e-6)


def test_kernels_are_cached_across_processes(tmp_path):
    script = textwrap.dedent("""
        import torch, optimlab
        from optimlab.fused import cuda
        p = torch.zeros(1000, device="cuda", requires_grad=True)
        p.grad = torch.ones(1000, device="cuda")
        optimlab.RAdam([p], lr=0.1, fused=True).step()
        print(cuda.stats["compiles"], cuda.stats["disk_loads"], cuda.stats["launches"], p.sum().item())
    """)
    env = {**os.environ, "OPTIMLAB_CACHE_DIR": str(tmp_path)}
    runs = [
        subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout.split()
        for _ in range(2)
    ]
    assert runs[0][:3] == ["1", "0", "1"] and runs[1][:3] == ["0", "1", "1"]
    assert runs[0][3] == runs[1][3]
    assert len(list(tmp_path.glob("*.cubin"))) == 1


def test_cuda_graph_capture_raises():
    """A replay would repeat the captured learning rate: refused, as torch.optim refuses
    capture when ``capturable`` is False."""
    params, optimizer = _run(lambda params: optimlab.Adam(params, lr=1e-3, fused=True), GPU, steps=1)
    before = [p.detach().clone() for p in params]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), pytest.raises(RuntimeError, match="cannot be captured in a CUDA graph"):
        with torch.cuda.graph(torch.cuda.CUDAGraph()):
            optimizer.step()
    torch.cuda.current_stream().wait_stream(stream)
    assert all(torch.equal(p, q) for p, q in zip(params, before))
