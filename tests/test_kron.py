"""PSGD-Kron against pytorch-optimizer's ``Kron`` (kron_torch's algorithm) in float64 and
against the NumPy formula (reference_numpy.psgd_kron), both driven by our probes.

The probes are random: ours come from each parameter's seeded generator
(`scale_by_kron.probe`), theirs from ``torch.randn_like`` on torch's global generator. So the
comparison hands the reference our probes: during its step ``torch.randn_like`` is replaced
by a function returning, in the order the reference visits the parameters, the probe
`scale_by_kron.probe` gives each for that step from the seed in our state. Their other
random draw, whether to balance the factors' norms (``np.random.random() < 0.01``), changes
the factors but not their Kronecker product, so it leaves the steps unchanged but for
rounding (ours balance at every preconditioner update). Their triangular solve casts to
float32 whatever the dtype: the comparison runs it in the parameters' float64."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import optimlab
import reference_numpy as ref
from helpers import MLP, PARITY_STEPS, assert_16_bit_run_within_two_ulps, assert_close, params_of, record
from optimizer_cases import CASES_BY_NAME

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
psgd = pytest.importorskip("pytorch_optimizer.optimizer.psgd")
CASE = CASES_BY_NAME["psgd_kron"]
pytestmark = pytest.mark.usefixtures("float64")
STEPS = 100

# Their names for our hyperparameters.
THEIR_NAMES = {"precond_update_prob": "pre_conditioner_update_probability",
               "momentum_into_precond_update": "momentum_into_precondition_update"}


def kron_of(optimizer) -> optimlab.transforms.scale_by_kron:
    return next(part.transform for part in optimizer.transform.leaves()
                if isinstance(part.transform, optimlab.transforms.scale_by_kron))


def theirs(params, sample):
    options = {THEIR_NAMES.get(k, k): v for k, v in sample.items() if k not in ("precond_lr", "precond_init_scale")}
    optimizer = pytorch_optimizer.Kron(params, precondition_dtype=torch.float64, **options)
    for group in optimizer.param_groups:  # set in its defaults, not taken as arguments
        group["precondition_lr"] = sample.get("precond_lr", 0.1)
        group["precondition_init_scale"] = sample.get("precond_init_scale", 1.0)
    return optimizer


def groups(params, sample):
    """Weight decay on the matrices only: theirs decays nothing else."""
    params = list(params)
    return [{"params": [p for p in params if p.ndim >= 2]},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def _solve_in_float64(x, a):
    """Their ``solve_triangular_right`` (X A^-1) without its casts to float32."""
    return torch.linalg.solve_triangular(a, x.reshape(-1, x.size(-1)), upper=True, left=False).reshape_as(x)


def step_with_our_probes(reference, ours, step, monkeypatch):
    """One step of the reference with ``torch.randn_like`` answering our probes."""
    kron = kron_of(ours)
    probes = [kron.probe(ours.state[p]["probe_seed"], step, p.detach().view(p.shape or (1,)))
              for group in ours.param_groups for p in group["params"]]
    probes.reverse()
    with monkeypatch.context() as patch:
        patch.setattr(torch, "randn_like", lambda like, **_: probes.pop().view_as(like))
        patch.setattr(psgd, "solve_triangular_right", _solve_in_float64)
        reference.step()
    return len(probes) == 0  # all drawn: the reference updated its preconditioner


SAMPLES = [
    {"lr": 0.01},
    {"lr": 0.01, "momentum": 0.8, "weight_decay": 0.1, "precond_lr": 0.3, "precond_init_scale": 0.5},
    {"lr": 0.01, "precond_update_prob": 0.5, "momentum_into_precond_update": False},
    {"lr": 0.01, "precond_update_prob": 0.25, "memory_save_mode": "one_diag", "maximize": True},
    {"lr": 0.01, "max_size_triangular": 4, "memory_save_mode": "smart_one_diag"},
    {"lr": 0.01, "memory_save_mode": "all_diag"},
    {"lr": 0.01, "min_ndim_triangular": 3},
]


@pytest.mark.parametrize("sample", SAMPLES, ids=str)
def test_matches_pytorch_optimizer(sample, monkeypatch):
    """The MLP (6x4 and 2x6 weights, biases), STEPS steps, same gradients and probes."""
    model = MLP()
    twin = copy.deepcopy(model)
    maximize = sample.get("maximize", False)
    ours = optimlab.PSGDKron(groups(model.parameters(), sample), **sample)
    reference = theirs(groups(twin.parameters(), sample), sample)
    updates = 0
    for t in range(1, STEPS + 1):
        for m, optimizer in ((model, ours), (twin, reference)):
            optimizer.zero_grad()
            m.loss(maximize).backward()
        ours.step()
        updates += step_with_our_probes(reference, ours, t, monkeypatch)
    probability = sample.get("precond_update_prob") or 1.0
    assert updates == int(STEPS * probability)
    worst = assert_close(params_of(model), params_of(twin), 1e-10, f"psgd_kron {sample}")
    record("pytorch-optimizer parity: psgd_kron", worst)
    assert not torch.equal(params_of(model)[0], params_of(MLP())[0])


def test_3d_and_0d_parameters_match_pytorch_optimizer(monkeypatch):
    """A 3x2x4 tensor (three factors; with max_size_triangular=3 the 4-side is diagonal) and a
    scalar, on noisy gradients."""
    generator = torch.Generator().manual_seed(4)
    ours = [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in ((3, 2, 4), ())]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    sample = {"lr": 0.01, "max_size_triangular": 3}
    optimizer, reference = optimlab.PSGDKron(ours, **sample), theirs(twins, sample)
    for t in range(1, STEPS + 1):
        grads = [torch.randn(p.shape, generator=generator) + p.detach() for p in ours]
        for p, q, g in zip(ours, twins, grads):
            p.grad, q.grad = g.clone(), g.clone()
        optimizer.step()
        step_with_our_probes(reference, optimizer, t, monkeypatch)
    assert [f.ndim for k, f in optimizer.state[ours[0]].items() if k.startswith("factor")] == [2, 2, 1]
    worst = assert_close([p.detach() for p in ours], [p.detach() for p in twins], 1e-10, "psgd_kron 3-D")
    record("pytorch-optimizer parity: psgd_kron", worst)


def test_defaults_are_pytorch_optimizers():
    ours = optimlab.PSGDKron(MLP().parameters()).param_groups[0]
    reference = pytorch_optimizer.Kron(MLP().parameters()).param_groups[0]
    for key in ("lr", "momentum", "weight_decay", "max_size_triangular", "min_ndim_triangular", "memory_save_mode"):
        assert ours[key] == reference[key], key
    assert ours["precond_lr"] == reference["precondition_lr"] and ours["precond_init_scale"] == reference[
        "precondition_init_scale"]
    assert ours["momentum_into_precond_update"] == reference["momentum_into_precondition_update"]
    assert ours["precond_update_prob"] is reference["pre_conditioner_update_probability"] is None


@pytest.mark.parametrize("sample", [{"lr": 0.01, "weight_decay": 0.05},
                                    {"lr": 0.01, "precond_update_prob": 0.3, "memory_save_mode": "one_diag",
                                     "momentum_into_precond_update": False}], ids=str)
def test_follows_the_numpy_formula(sample):
    """Each parameter of test_reference's shapes plus a 3-D one against reference_numpy's
    formula, handed the probes our steps drew."""
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal(shape) for shape in ((2, 3), (4,), (2, 2, 3))]
    params = [torch.tensor(x, requires_grad=True) for x in xs]
    optimizer = optimlab.PSGDKron(params, **sample)
    kron = kron_of(optimizer)
    hp = CASE.hyperparams(sample)
    states = [{} for _ in xs]
    for t in range(1, 201):
        grads = [rng.standard_normal(x.shape) + x for x in xs]  # a noisy gradient of |x|^2 / 2
        for p, g, x in zip(params, grads, xs):
            p.grad = torch.tensor(g - x + p.detach().numpy())
        grads = [p.grad.numpy().copy() for p in params]
        optimizer.step()
        probes = [kron.probe(optimizer.state[p]["probe_seed"], t, p.detach()).numpy() for p in params]
        xs = [ref.psgd_kron(x, g, state, t, hp, v) for x, g, state, v in zip(xs, grads, states, probes)]
    for p, x in zip(params, xs):
        np.testing.assert_allclose(p.detach().numpy(), x, rtol=1e-10, atol=1e-14)


def test_schedule_updates_every_step_then_ever_fewer():
    """precond_update_prob=None: every one of the first 501 steps, then at the decaying
    probability's rate, 0.03 from step ~4000 on."""
    updates = [optimlab.transforms.kron._updates_preconditioner(t, None) for t in range(1, 20001)]
    assert all(updates[:501]) and not all(updates[501:510])
    assert sum(updates[10000:20000]) == pytest.approx(300, abs=1)
    assert sum(updates) == pytest.approx(501 + sum(np.exp(-1e-3 * np.arange(1, 3507))) + 0.03 * (20000 - 501 - 3506),
                                         abs=1)


def test_seeds_choose_the_probes():
    """Another seed, other probes and another run; the same seed, the same run."""
    def run(seed):
        model = MLP()
        optimizer = optimlab.PSGDKron(model.parameters(), lr=0.01, seed=seed)
        for _ in range(5):
            optimizer.zero_grad()
            model.loss().backward()
            optimizer.step()
        return params_of(model)

    assert all(map(torch.equal, run(1), run(1)))
    assert not torch.equal(run(1)[0], run(2)[0])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16_bit_parameters_step_in_float32_with_state_dtype(dtype):
    """With ``state_dtype=torch.float32`` the factors and the math are float32: given the same
    gradients, within two 16-bit ulps of a float32 run."""
    assert_16_bit_run_within_two_ulps(lambda groups: optimlab.PSGDKron(groups, lr=0.01), dtype)