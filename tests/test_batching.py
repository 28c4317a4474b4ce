"""Same-shaped matrices decomposed together (`optimlab.transforms.batching.by_shape`):
SOAP's eigenbases and QR refreshes and Shampoo's inverse roots are one torch call per
shape, and every matrix steps bit for bit as it does alone in its own optimizer."""

from __future__ import annotations

import pytest
import torch

import optimlab
from optimlab.transforms.batching import by_shape

pytestmark = pytest.mark.usefixtures("float64")

SHAPES = [(6, 4), (6, 4), (4, 6), (6, 4), (3,)]


def _params(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in SHAPES]


def test_by_shape_is_each_matrixs_own_call():
    generator = torch.Generator().manual_seed(1)
    matrices = [torch.randn(shape, generator=generator) for shape in [(5, 5), (3, 3), (5, 5), (5, 5)]]
    matrices = [m @ m.T for m in matrices]
    for function in (torch.linalg.eigh, torch.linalg.qr):
        for matrix, got in zip(matrices, by_shape(function, matrices)):
            assert all(torch.equal(g, e) for g, e in zip(got, function(matrix)))


@pytest.mark.parametrize(("make", "decompositions"), [
    (lambda params: optimlab.SOAP(params, lr=0.01, precondition_frequency=2), {"eigh", "qr"}),
    (lambda params: optimlab.Shampoo(params, lr=0.01, precondition_frequency=2), {"eigh"}),
], ids=["soap", "shampoo"])
def test_same_shaped_matrices_decompose_together_and_step_as_alone(make, decompositions, monkeypatch):
    together = _params()
    alone = _params()
    optimizer = make(together)
    singles = [make([p]) for p in alone]
    calls: dict[str, list[int]] = {"eigh": [], "qr": []}  # the batch size of each call of the grouped step
    recording = []
    for name in calls:
        original = getattr(torch.linalg, name)

        def counted(x, *args, _original=original, _name=name, **kwargs):
            if recording:
                calls[_name].append(x.shape[0] if x.ndim == 3 else 1)
            return _original(x, *args, **kwargs)

        monkeypatch.setattr(torch.linalg, name, counted)
    generator = torch.Generator().manual_seed(2)
    for _ in range(6):
        grads = [torch.randn(shape, generator=generator) for shape in SHAPES]
        for p, q, g in zip(together, alone, grads):
            p.grad, q.grad = g.clone(), g.clone()
        recording.append(True)
        optimizer.step()
        recording.clear()
        for single in singles:
            single.step()
    for p, q in zip(together, alone):
        assert torch.equal(p, q)
    for name in decompositions:
        # The 6x6 statistics (three 6x4 weights' left, the 4x6's right) as one stack, the 4x4 too.
        assert set(calls[name]) == {4}, (name, calls[name])
