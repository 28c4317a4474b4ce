"""Same-shaped matrices stepped together (`optimlab.transforms.batching`): SOAP's and
Shampoo's state of such matrices lives in one stack per buffer, their products are batched
and their decompositions one torch call per shape, and every matrix steps as it does alone
in its own optimizer, to rounding."""

from __future__ import annotations

import copy

import pytest
import torch

import optimlab
from helpers import assert_close, record
from optimlab.transforms import batching
from optimlab.transforms.batching import by_shape
from optimlab.transforms.kron import _GOLDEN as GOLDEN

pytestmark = pytest.mark.usefixtures("float64")

# SOAP's first bases are the eigenvectors of G G^T: a non-square gradient leaves a null space
# whose basis is LAPACK's arbitrary choice, which rounding changes altogether (a stack of small
# matrices is multiplied by another kernel than one matrix, with other rounding), so SOAP is
# compared on square matrices. Shampoo's roots do not depend on that choice.
SOAP_SHAPES = [(5, 5), (5, 5), (3, 3), (5, 5), (3,)]
SHAMPOO_SHAPES = [(6, 4), (6, 4), (4, 6), (6, 4), (3,)]
CASES = [
    # (make(params, index of the first), shapes, {decomposition: batch sizes of its calls})
    (lambda params, first=0: optimlab.SOAP(params, lr=0.01, precondition_frequency=2), SOAP_SHAPES,
     {"eigh": {6, 2}, "qr": {6, 2}}),  # the 5x5 weights' six statistics in one call, the 3x3's two
    (lambda params, first=0: optimlab.Shampoo(params, lr=0.01, precondition_frequency=2), SHAMPOO_SHAPES,
     {"eigh": {4}}),  # the 6x6 statistics (three 6x4 weights' left, the 4x6's right), the 4x4 too
    # A parameter's probes come from its seed and index: alone, the seed makes up the index.
    (lambda params, first=0: optimlab.PSGDKron(params, lr=0.01, seed=first * GOLDEN), SHAMPOO_SHAPES, {}),
]
IDS = ["soap", "shampoo", "psgd_kron"]


def _params(shapes, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in shapes]


def _noise_steps(optimizers, param_lists, steps: int, seed: int = 2) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        grads = [torch.randn(p.shape, generator=generator) for p in param_lists[0]]
        for params in param_lists:
            for p, g in zip(params, grads):
                p.grad = g.clone()
        for optimizer in optimizers:
            optimizer.step()


def test_by_shape_is_each_matrixs_own_call():
    # Within rounding, not bit for bit: MKL's results depend on where a matrix lies in memory
    # (seen on an AVX-512 AMD CPU: a stack's second 5x5 matrix rounds otherwise).
    generator = torch.Generator().manual_seed(1)
    matrices = [torch.randn(shape, generator=generator) for shape in [(5, 5), (3, 3), (5, 5), (5, 5)]]
    matrices = [m @ m.T + torch.eye(len(m)) for m in matrices]
    for function in (torch.linalg.eigh, torch.linalg.qr):
        for matrix, got in zip(matrices, by_shape(function, matrices)):
            assert_close(list(got), list(function(matrix)), 1e-12, function.__name__)


def test_by_shape_takes_stacks_and_batches_their_matrices_with_the_others():
    generator = torch.Generator().manual_seed(2)
    matrices = [torch.randn(5, 5, generator=generator) for _ in range(4)]
    matrices = [m @ m.T + torch.eye(5) for m in matrices]
    batch_sizes = []

    def eigh(x):
        batch_sizes.append(x.shape[:-2])
        return torch.linalg.eigh(x)

    inputs = [torch.stack(matrices[:2]), matrices[2], torch.stack(matrices[3:])]
    results = by_shape(eigh, inputs)
    assert batch_sizes == [(4,)]  # one call for the four 5 x 5 matrices
    assert [tuple(part.shape) for part in results[0]] == [(2, 5), (2, 5, 5)]  # batched as its input
    assert [tuple(part.shape) for part in results[1]] == [(5,), (5, 5)]
    for got, matrix in zip([*zip(*(p.unbind() for p in results[0])), results[1], *zip(*(p.unbind() for p in results[2]))],
                           matrices):
        assert_close(list(got), list(torch.linalg.eigh(matrix)), 1e-12, "eigh")


@pytest.mark.parametrize(("make", "shapes", "batches"), CASES, ids=IDS)
def test_same_shaped_matrices_step_together_as_alone(make, shapes, batches, monkeypatch):
    together, alone = _params(shapes), _params(shapes)
    optimizer = make(together)
    calls: dict[str, list[int]] = {name: [] for name in batches}  # the batch size of each call
    for name in calls:
        original = getattr(torch.linalg, name)

        def counted(x, *args, _original=original, _name=name, **kwargs):
            calls[_name].append(x.shape[0] if x.ndim == 3 else 1)
            return _original(x, *args, **kwargs)

        monkeypatch.setattr(torch.linalg, name, counted)
    _noise_steps([optimizer], [together], 6)
    monkeypatch.undo()
    _noise_steps([make([p], i) for i, p in enumerate(alone)], [alone], 6)
    worst = assert_close([p.detach() for p in together], [p.detach() for p in alone], 1e-10, "together vs alone")
    record("same-shaped matrices stepped together vs alone", worst)
    assert {name: set(sizes) for name, sizes in calls.items()} == batches
    _assert_stacked(optimizer, together[0], together[1])


def _assert_stacked(optimizer, first, second) -> None:
    """The tensor buffers of ``first`` and ``second`` (same-shaped, consecutive in the
    group) are consecutive slices of one stack."""
    for key, buffer in optimizer.state[first].items():
        if torch.is_tensor(buffer) and buffer.ndim:
            following = optimizer.state[second][key]
            assert following.data_ptr() == buffer.data_ptr() + buffer.numel() * buffer.element_size(), key


@pytest.mark.parametrize(("make", "shapes"), [case[:2] for case in CASES], ids=IDS)
def test_a_checkpoint_that_lost_the_stacks_restacks_and_resumes_bit_exactly(make, shapes):
    """A state dict whose buffers are separate tensors (cloned, as a state-dict conversion or
    an older checkpoint gives them) is re-stacked at its first step, and the run continues
    as the uninterrupted one, bit for bit."""
    params, resumed = _params(shapes), _params(shapes)
    optimizer = make(params)
    _noise_steps([optimizer], [params], 3)
    saved = copy.deepcopy(optimizer.state_dict())
    saved["state"] = {i: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
                      for i, s in saved["state"].items()}
    with torch.no_grad():
        for p, q in zip(resumed, params):
            p.copy_(q)
    twin = make(resumed)
    twin.load_state_dict(saved)
    with pytest.raises(AssertionError):
        _assert_stacked(twin, resumed[0], resumed[1])
    _noise_steps([optimizer], [params], 4, seed=3)
    _noise_steps([twin], [resumed], 4, seed=3)
    for p, q in zip(params, resumed):
        assert torch.equal(p, q)
    _assert_stacked(twin, resumed[0], resumed[1])


@pytest.mark.parametrize(("make", "shapes"), [case[:2] for case in CASES], ids=IDS)
def test_the_products_of_a_step_are_as_many_for_four_matrices_as_for_two(make, shapes, monkeypatch):
    """Batched: a step of four 5x3 weights runs as many matrix products as one of two (none
    per matrix), and a weight alone runs torch's 2-D ones; beyond `STACK_WORK`, four
    weights run twice the products of two, none batched."""
    def products(count: int) -> dict[str, int]:
        params = _params([(5, 3)] * count)
        optimizer = make(params)
        _noise_steps([optimizer], [params], 2)  # SOAP's first step only gathers
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            _noise_steps([optimizer], [params], 1)
        names = [event.name for event in profile.events()]
        return {name: names.count(name) for name in ("aten::mm", "aten::bmm")}

    two, four = products(2), products(4)
    assert two == four and two["aten::bmm"] > 0 and two["aten::mm"] == 0, (two, four)
    assert products(1)["aten::bmm"] == 0
    monkeypatch.setattr(batching, "STACK_WORK", 5 * 3 * 5 - 1)
    two, four = products(2), products(4)
    assert two["aten::bmm"] == four["aten::bmm"] == 0 and four["aten::mm"] == 2 * two["aten::mm"] > 0, (two, four)
