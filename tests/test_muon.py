"""Muon's contract beyond the registry (which runs `MuonWithAdamW` on matrices against
torch.optim.Muon), and `partition` against the optimizers it routes to, run separately on
the parameters it routes to them."""

from __future__ import annotations

import copy
import io

import pytest
import torch

import optimlab
from helpers import MLP, PARITY_RTOL, assert_close, params_of, record, train
from optimlab import chain, partition

pytestmark = pytest.mark.usefixtures("float64")

STEPS = 100


def _weights(model):
    return [model.first.weight, model.second.weight]


def _biases(model):
    return [model.first.bias, model.second.bias]


class _Each:
    """Optimizers stepped (and zeroed) together, as one."""

    def __init__(self, optimizers) -> None:
        self.optimizers = optimizers

    def zero_grad(self) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad()

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()


def _train_side_by_side(model, ours, twin, theirs, before_step=lambda: None):
    """STEPS steps of ``ours`` on ``model``, and of the torch optimizers ``theirs``
    together on ``twin`` (one backward pass, then ``before_step``, then each steps)."""
    for _ in range(STEPS):
        ours.zero_grad()
        model.loss().backward()
        ours.step()
        for optimizer in theirs:
            optimizer.zero_grad()
        twin.loss().backward()
        before_step()
        for optimizer in theirs:
            optimizer.step()


def test_muon_class_matches_torch():
    """optimlab.Muon itself (the registry runs MuonWithAdamW on matrices), Newton-Schulz in
    bfloat16 as torch's: a float64 rounding difference does not move a bfloat16 rounding.
    Each weight has its own optimizer: a lone matrix takes torch's operations (matrices of
    different shapes in one optimizer iterate as a padded stack, within bfloat16 rounding
    of them: test_muon_class_keeps_torchs_two_dimensional_contract_...)."""
    model = MLP()
    twin = copy.deepcopy(model)
    kwargs = {"lr": 0.02, "weight_decay": 0.05, "adjust_lr_fn": "match_rms_adamw"}
    train(model, _Each([optimlab.Muon([w], **kwargs) for w in _weights(model)]), STEPS)
    train(twin, _Each([torch.optim.Muon([w], **kwargs) for w in _weights(twin)]), STEPS)
    worst = assert_close(params_of(model), params_of(twin), PARITY_RTOL, "Muon")
    record("Muon class vs torch", worst)
    assert not torch.equal(params_of(model)[0], params_of(MLP())[0])


@pytest.mark.parametrize(
    "param",
    [torch.zeros(6), torch.zeros(2, 3, 4), torch.zeros(3, 4, dtype=torch.complex128)],
    ids=["vector", "3-d", "complex"],
)
def test_muon_rejects_what_torch_rejects(param):
    """torch.optim.Muon raises ValueError for a non-matrix at construction (and fails on a
    complex one at its first step); optimlab.Muon raises ValueError for both, naming the
    parameter's shape or dtype, in the constructor and in add_param_group, changing nothing."""
    param = torch.nn.Parameter(param)
    if not param.is_complex():
        with pytest.raises(ValueError):
            torch.optim.Muon([param])
    with pytest.raises(ValueError, match=r"params: Muon takes (2-D|real) parameters only, got one of (shape|dtype)"):
        optimlab.Muon([torch.nn.Parameter(torch.zeros(2, 2)), param])
    model = MLP()
    optimizer = optimlab.Muon([model.first.weight], lr=0.02)
    train(model, optimizer, 3)
    state = copy.deepcopy(optimizer.state_dict())
    with pytest.raises(ValueError, match=r"params: Muon takes"):
        optimizer.add_param_group({"params": (p for p in [model.second.weight, param])})
    assert torch.equal(optimizer.state_dict()["state"][0]["momentum_buffer"], state["state"][0]["momentum_buffer"])
    assert len(optimizer.param_groups) == 1 and model.second.weight not in optimizer.state
    optimizer.add_param_group({"params": (p for p in [model.second.weight])})  # a generator, read once
    assert optimizer.param_groups[1]["params"] == [model.second.weight]


def test_muon_maximize_ascends_what_minimize_descends():
    model = MLP()
    twin = copy.deepcopy(model)
    train(model, optimlab.Muon(_weights(model), lr=0.02, maximize=True), 20, maximize=True)
    train(twin, optimlab.Muon(_weights(twin), lr=0.02), 20)
    assert all(torch.equal(a, b) for a, b in zip(params_of(model), params_of(twin)))


def test_muon_with_adamw_is_torch_muon_and_adamw_side_by_side():
    """The matrices follow torch.optim.Muon, the biases torch.optim.AdamW; two param groups
    with their own lr and weight decay, and AdamW's own lr in the second ("adamw.lr")."""
    model = MLP()
    twin = copy.deepcopy(model)
    adamw = {"betas": (0.8, 0.99), "eps": 1e-6}
    ours = optimlab.MuonWithAdamW(
        [{"params": model.first.parameters()},
         {"params": model.second.parameters(), "lr": 0.01, "weight_decay": 0.02, "adamw.lr": 0.005}],
        lr=0.02, weight_decay=0.05, adamw_betas=adamw["betas"], adamw_eps=adamw["eps"],
    )
    muon = torch.optim.Muon([{"params": [twin.first.weight]}, {"params": [twin.second.weight], "lr": 0.01,
                                                                "weight_decay": 0.02}], lr=0.02, weight_decay=0.05)
    adam = torch.optim.AdamW([{"params": [twin.first.bias]}, {"params": [twin.second.bias], "lr": 0.005,
                                                              "weight_decay": 0.02}],
                             lr=0.02, weight_decay=0.05, foreach=False, **adamw)
    _train_side_by_side(model, ours, twin, [muon, adam])
    worst = assert_close(params_of(model), params_of(twin), PARITY_RTOL, "MuonWithAdamW")
    record("partition: MuonWithAdamW vs torch Muon + AdamW", worst)
    # Each parameter keeps its own transform's state only.
    assert set(ours.state[model.first.weight]) == {"step", "ema"}
    assert set(ours.state[model.first.bias]) == {"step", "exp_avg", "exp_avg_sq"}
    assert optimlab.create("muon", MLP().parameters()).__class__ is optimlab.MuonWithAdamW


def _sgd_or_adam():
    return partition(
        {"sgd": optimlab.sgd(lr=0.05, momentum=0.9, nesterov=True), "adam": optimlab.adam(lr=0.05)},
        label=lambda p: "sgd" if p.ndim == 2 else "adam",
    )


def test_partition_hyperparameters():
    """The first transform's names as they are; the second shares a name whose default
    agrees (lr, weight_decay, maximize) and has its own "label.name" otherwise."""
    transform = _sgd_or_adam()
    assert transform.hyperparams == {
        "maximize": False, "weight_decay": 0.0, "momentum": 0.9, "dampening": 0.0, "nesterov": True, "lr": 0.05,
        "adam.betas": (0.9, 0.999), "adam.eps": 1e-8, "adam.amsgrad": False,
    }
    group = {**transform.hyperparams, "adam.eps": 1e-3, "adam.lr": 0.1}
    assert transform.view(group, "adam")["eps"] == 1e-3 and transform.view(group, "adam")["lr"] == 0.1
    assert transform.view(group, "sgd")["lr"] == 0.05
    with pytest.raises(ValueError, match=r"betas\[1\] must be in \[0, 1\), got 1.5"):
        optimlab.Optimizer(MLP().parameters(), transform, **{"adam.betas": (0.9, 1.5)})
    with pytest.raises(TypeError, match="partition takes Transform instances"):
        partition({"sgd": optimlab.SGD}, label=lambda p: "sgd")


def test_partition_in_a_chain_matches_torch_clipping_then_sgd_and_adam():
    """Gradients clipped to [-0.1, 0.1], then SGD (Nesterov) for the weights and Adam for
    the biases: torch's clip_grad_value_, torch.optim.SGD and torch.optim.Adam."""
    model = MLP()
    twin = copy.deepcopy(model)
    ours = optimlab.Optimizer(model.parameters(), chain(optimlab.clip_by_value(0.1), _sgd_or_adam()))
    sgd = torch.optim.SGD(_weights(twin), lr=0.05, momentum=0.9, nesterov=True, foreach=False)
    adam = torch.optim.Adam(_biases(twin), lr=0.05, foreach=False)
    _train_side_by_side(model, ours, twin, [sgd, adam], lambda: torch.nn.utils.clip_grad_value_(twin.parameters(), 0.1))
    worst = assert_close(params_of(model), params_of(twin), PARITY_RTOL, "chain(clip, partition)")
    record("partition: chain(clip_by_value, partition(sgd, adam)) vs torch", worst)
    assert set(ours.state[model.second.weight]) == {"step", "momentum_buffer"}


def test_partition_resumes_from_a_checkpoint_bit_exactly():
    def run(split=None):
        model = MLP()
        optimizer = optimlab.MuonWithAdamW(model.parameters(), lr=0.02)
        for i in range(30):
            if i == split:
                buffer = io.BytesIO()
                torch.save(optimizer.state_dict(), buffer)
                buffer.seek(0)
                optimizer = optimlab.MuonWithAdamW(model.parameters(), lr=0.02)
                optimizer.load_state_dict(torch.load(buffer))
            optimizer.zero_grad()
            model.loss().backward()
            optimizer.step()
        return params_of(model)

    assert all(torch.equal(a, b) for a, b in zip(run(), run(split=13)))


def test_partition_rejects_an_unknown_label():
    model = MLP()
    optimizer = optimlab.Optimizer(model.parameters(), partition({"sgd": optimlab.sgd()}, label=lambda p: "adam"))
    before = params_of(model)
    model.loss().backward()
    with pytest.raises(ValueError, match=r"label returned 'adam' for a parameter of shape \(6, 4\); the labels are"):
        optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(params_of(model), before))
    assert not any(optimizer.state.values())


def _transformer_and_conv_parameters():
    """Same-shaped matrices (three 8x5, two 5x8: batched), a lone 4x4, a conv's 6x3x3x3
    filters (a 6x27 matrix) and a bias (AdamW's)."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(8, 5), (5, 8), (8, 5), (4, 4), (5, 8), (8, 5), (6, 3, 3, 3), (6,)]
    return [torch.nn.Parameter(torch.randn(shape, generator=generator, dtype=torch.float64)) for shape in shapes]


def test_muon_batches_same_shaped_matrices_and_flattens_conv_filters_as_the_numpy_formula():
    """`MuonWithAdamW` steps every matrix (a conv's filters as out x in*kh*kw) as the float64
    NumPy formula does one matrix at a time, though same-shaped ones run as one batch."""
    from reference_numpy import muon as muon_reference

    params = _transformer_and_conv_parameters()
    hp = {"lr": 0.02, "weight_decay": 0.1, "momentum": 0.95, "nesterov": True, "adjust_lr_fn": None,
          "ns_coefficients": optimlab.transforms.muon.NS_COEFFICIENTS, "ns_steps": 5, "eps": 1e-7,
          "maximize": False}
    optimizer = optimlab.MuonWithAdamW(params, lr=hp["lr"], weight_decay=hp["weight_decay"], ns_dtype=torch.float64)
    expected = [p.detach().reshape(p.size(0), -1).numpy().copy() for p in params[:-1]]
    states = [{} for _ in expected]
    generator = torch.Generator().manual_seed(1)
    for step in range(1, 21):
        grads = [torch.randn(p.shape, generator=generator, dtype=torch.float64) for p in params]
        for p, g in zip(params, grads):
            p.grad = g
        optimizer.step()
        expected = [muon_reference(x, g.reshape(g.size(0), -1).numpy(), state, step, hp)
                    for x, g, state in zip(expected, grads, states)]
    for p, x in zip(params[:-1], expected):
        got = p.detach().reshape(p.size(0), -1).numpy()
        assert abs(got - x).max() <= 1e-12 * abs(x).max(), tuple(p.shape)
    assert set(optimizer.state[params[6]]) == {"step", "ema"}  # the conv's filters went to Muon


def test_muon_class_keeps_torchs_two_dimensional_contract_and_a_lone_matrix_keeps_torchs_bits(monkeypatch):
    with pytest.raises(ValueError, match=r"params: Muon takes 2-D parameters only, got one of shape \(6, 3, 3, 3\)"):
        optimlab.Muon([torch.nn.Parameter(torch.zeros(6, 3, 3, 3))])
    vector = torch.nn.Parameter(torch.zeros(6))
    vector.grad = torch.ones(6)
    with pytest.raises(ValueError, match=r"Muon takes 2-D parameters or more .*got one of shape \(6,\)"):
        optimlab.Optimizer([vector], optimlab.muon()).step()  # the chain checks its state's parameters
    # Two same-shaped matrices and two of other shapes in one optimizer (a stack, and a padded
    # stack) and each alone (torch's operations, in bfloat16): the stacks are within bfloat16
    # rounding of the single ones, which are torch's.
    generator = torch.Generator().manual_seed(2)
    shapes = [(8, 5), (8, 5), (5, 3), (4, 9)]
    start = [torch.randn(shape, generator=generator) for shape in shapes]
    grads = [torch.randn(shape, generator=generator) for shape in shapes]
    together = [torch.nn.Parameter(s.clone()) for s in start]
    alone = [torch.nn.Parameter(s.clone()) for s in start]
    twins = [torch.nn.Parameter(s.clone()) for s in start]
    optimizers = [optimlab.Muon(together, lr=0.02), *(optimlab.Muon([p], lr=0.02) for p in alone),
                  *(torch.optim.Muon([p], lr=0.02) for p in twins)]
    for p, g in zip([*together, *alone, *twins], grads * 3):
        p.grad = g.clone()
    iterated = []  # the shapes optimlab's iteration ran on
    newton_schulz = optimlab.transforms.muon._newton_schulz
    monkeypatch.setattr(optimlab.transforms.muon, "_newton_schulz",
                        lambda x, *args: iterated.append(tuple(x.shape)) or newton_schulz(x, *args))
    for optimizer in optimizers:
        optimizer.step()
    assert iterated[:2] == [(2, 8, 5), (2, 4, 9)]  # the stack, the padded stack (5x3 as 3x5), then alone
    assert all(torch.allclose(a, t, rtol=1e-14, atol=0) for a, t in zip(alone, twins))
    assert all(torch.allclose(b, a, rtol=0, atol=2e-2 * 0.02) for b, a in zip(together, alone))


def test_matrices_of_different_shapes_pad_together_only_where_the_calls_cost_more_than_the_padding():
    """`_padded_groups`: the lab MLP's three weights (dispatch-bound: ~20 us a call, their
    products a few us) iterate as one padded stack; a 2048x2048 matrix and a 16x16 one do not
    (padding the small one would cost a 2048x2048 iteration)."""
    from optimlab.transforms.muon import _padded_groups

    def groups(shapes):
        matrices = [torch.zeros(shape) for shape in shapes]
        return [sorted(tuple(matrices[i].shape) for i in group)
                for group in _padded_groups(matrices, list(range(len(matrices))))]

    assert groups([(128, 40), (128, 128), (10, 128)]) == [[(10, 128), (128, 40), (128, 128)]]
    assert groups([(2048, 2048), (16, 16)]) == [[(16, 16)], [(2048, 2048)]]
    float64 = [torch.zeros(8, 5, dtype=torch.float64), torch.zeros(4, 4, dtype=torch.float32)]  # dtypes apart
    assert len(_padded_groups(float64, [0, 1])) == 2
