"""`optimlab.workspace.Workspace`: scratch reused from step to step, never shared by copies."""

from __future__ import annotations

import copy
import pickle

import torch

import optimlab
from optimlab.workspace import Workspace


def _matrices(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in [(8, 5), (8, 5), (5, 8), (4, 4)]]


def _step(optimizer, params, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator)
    optimizer.step()


def test_a_tensor_is_made_once_per_name_shape_dtype_and_device():
    workspace = Workspace()
    a = workspace.get("x", (3, 4), torch.float32, torch.device("cpu"))
    assert workspace.get("x", (3, 4), torch.float32, torch.device("cpu")) is a
    assert workspace.get("x", (4, 3), torch.float32, torch.device("cpu")) is not a
    assert workspace.get("x", (3, 4), torch.float64, torch.device("cpu")) is not a
    assert workspace.get("y", (3, 4), torch.float32, torch.device("cpu")) is not a
    workspace.clear()
    assert workspace.get("x", (3, 4), torch.float32, torch.device("cpu")) is not a


def test_beyond_its_limit_a_request_gets_a_fresh_tensor_that_is_not_kept(monkeypatch):
    """Kept scratch is memory held between steps: a workspace keeps at most `limit` bytes."""
    monkeypatch.setattr(Workspace, "limit", 1000)
    workspace = Workspace()
    cpu = torch.device("cpu")
    kept = workspace.get("small", (100,), torch.float64, cpu)  # 800 bytes
    assert workspace.get("small", (100,), torch.float64, cpu) is kept
    first = workspace.get("large", (100,), torch.float32, cpu)  # 400 more: past the limit
    assert workspace.get("large", (100,), torch.float32, cpu) is not first
    assert workspace.get("tiny", (50,), torch.float32, cpu) is workspace.get("tiny", (50,), torch.float32, cpu)


def test_muons_scratch_is_reused_and_a_copy_of_the_optimizer_has_its_own():
    """Muon's stacked matrices and Newton-Schulz products are made once; a deepcopy or a
    pickle of the optimizer carries no scratch, and steps exactly as the original."""
    params = _matrices()
    optimizer = optimlab.Muon(params, lr=0.02)
    _step(optimizer, params, 1)
    workspace = next(t.workspace for t in _leaves(optimizer) if hasattr(t, "workspace"))
    made = {key: tensor.data_ptr() for key, tensor in workspace._tensors.items()}
    assert made  # the batch of two 8x5 matrices and the products
    _step(optimizer, params, 2)
    assert {key: tensor.data_ptr() for key, tensor in workspace._tensors.items()} == made
    for clone in (copy.deepcopy(optimizer), pickle.loads(pickle.dumps(optimizer))):
        twin_workspace = next(t.workspace for t in _leaves(clone) if hasattr(t, "workspace"))
        assert twin_workspace is not workspace and not twin_workspace._tensors
    twin = copy.deepcopy(optimizer)
    twin_params = [p for group in twin.param_groups for p in group["params"]]
    for seed in (3, 4):
        _step(optimizer, params, seed)
        _step(twin, twin_params, seed)
    assert all(torch.equal(p, q) for p, q in zip(params, twin_params))


def _leaves(optimizer):
    return [part.transform for part in optimizer.transform.leaves()]
