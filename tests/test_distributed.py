"""optimlab under torch.distributed, on 2 gloo ranks (CPU processes): the fused Adam under DDP
and FSDP2 against torch.optim.Adam, global-norm clipping under ZeroRedundancyOptimizer against
the same chain under DDP, and a distributed checkpoint (torch.distributed.checkpoint) of an
FSDP2 model's optimizer."""

from __future__ import annotations

import gc
import os
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import optimlab
from helpers import free_port

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo")

WORLD = 2
STEPS = 8


def _spawn(function, tmp_path, *args) -> dict:
    """Run ``function(rank, out, *args)`` on WORLD ranks; rank 0's ``torch.save`` d result."""
    out = tmp_path / "result.pt"
    mp.spawn(_init_and_run, args=(function, free_port(), str(out), args), nprocs=WORLD, join=True)
    return torch.load(out, weights_only=False)


def _init_and_run(rank, function, port, out, args):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        result = function(rank, *args)
        if rank == 0:
            torch.save(result, out)
        dist.barrier()
    finally:
        gc.collect()
        dist.destroy_process_group()
    # Gloo's worker threads can still hold work objects at interpreter teardown and abort the
    # process (SIGABRT, "terminate called without an active exception"; pytorch#179291): a rank
    # whose work is done and saved skips that teardown.
    os._exit(0)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))


def _batch(rank: int, step: int):
    generator = torch.Generator().manual_seed(100 * step + rank)
    return torch.randn(32, 8, generator=generator), torch.randn(32, 4, generator=generator)


def _train(model, optimizer, steps, start=0):
    rank = dist.get_rank()
    for step in range(start, start + steps):
        x, y = _batch(rank, step)
        optimizer.zero_grad()
        (model(x) - y).pow(2).mean().backward()
        optimizer.step()


def _fused_adam_against_torch(rank, wrapper):
    final = {}
    # fused=True: wrapped parameters (DDP's plain tensors, FSDP's DTensors) must either take
    # the kernel or fall back to the eager path, never reach the kernel as wrappers.
    for name, factory, options in (("torch", torch.optim.Adam, {}), ("optimlab", optimlab.Adam, {"fused": True})):
        model = _model()
        if wrapper == "fsdp":
            from torch.distributed.fsdp import fully_shard

            fully_shard(model)
        else:
            model = nn.parallel.DistributedDataParallel(model)
        _train(model, factory(model.parameters(), lr=1e-2, weight_decay=0.01, **options), STEPS)
        final[name] = [(v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone()
                       for v in model.state_dict().values()]
    every_rank = [None] * WORLD
    dist.all_gather_object(every_rank, final)
    return every_rank


@pytest.mark.slow
@pytest.mark.parametrize("wrapper", ["ddp", "fsdp"])
def test_fused_adam_under_ddp_and_fsdp_matches_torch(tmp_path, wrapper):
    every_rank = _spawn(_fused_adam_against_torch, tmp_path, wrapper)
    for final in every_rank:
        for ours, theirs in zip(final["optimlab"], final["torch"]):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
        for ours, rank0 in zip(final["optimlab"], every_rank[0]["optimlab"]):
            assert torch.equal(ours, rank0)  # replicas stay identical


def _clipped_adam(sharded):
    return optimlab.chain(optimlab.clip_by_global_norm(0.05, sharded=sharded), optimlab.scale_by_adam(),
                          optimlab.scale_by_learning_rate(0.01))


def _zero_clipping(rank):
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel as DDP

    def params_after(sharded, zero):
        model = DDP(_model())
        if zero:
            optimizer = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=optimlab.Optimizer,
                                                transform=_clipped_adam(sharded))
        else:
            optimizer = optimlab.Optimizer(model.parameters(), _clipped_adam(sharded))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _train(model, optimizer, STEPS)
        # What the first step clipped: the whole model's gradient norm is above max_norm.
        return [p.detach().clone() for p in model.parameters()], [str(w.message) for w in caught]

    ddp, ddp_warnings = params_after(False, zero=False)
    zero, zero_warnings = params_after(True, zero=True)
    unknown, unknown_warnings = params_after(None, zero=True)
    return {"ddp": ddp, "zero": zero, "unknown": unknown,
            "warnings": (ddp_warnings, zero_warnings, unknown_warnings)}


def _max_rel(a, b):
    return max(((x - y).abs().max() / y.abs().max()).item() for x, y in zip(a, b))


@pytest.mark.slow
def test_clip_by_global_norm_under_zero_is_the_whole_models_norm(tmp_path):
    result = _spawn(_zero_clipping, tmp_path)
    assert _max_rel(result["zero"], result["ddp"]) <= 1e-6
    # Each rank's own shard's norm (what it measured before sharded=True): far off, and said once.
    assert _max_rel(result["unknown"], result["ddp"]) > 1e-3
    ddp_warnings, zero_warnings, unknown_warnings = result["warnings"]
    assert ddp_warnings == zero_warnings == []
    assert len(unknown_warnings) == 1 and "pass sharded=True" in unknown_warnings[0]


def test_sharded_arguments_are_checked():
    with pytest.raises(ValueError, match=r"sharded must be None, True or False, got 'yes'"):
        optimlab.clip_by_global_norm(1.0, sharded="yes")
    with pytest.raises(ValueError, match=r"process_group is for sharded=True, got sharded=None"):
        optimlab.clip_by_global_norm(1.0, process_group=object())


def _fsdp2_checkpoint(rank, directory, make_optimizer):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict, get_optimizer_state_dict, set_model_state_dict, set_optimizer_state_dict,
    )
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (WORLD,))

    def sharded():
        model = _model()
        for layer in model:
            if isinstance(layer, nn.Linear):
                fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model, make_optimizer(model.parameters())

    model, optimizer = sharded()
    _train(model, optimizer, 3)
    dcp.save({"model": get_model_state_dict(model), "optimizer": get_optimizer_state_dict(model, optimizer)},
             checkpoint_id=directory)
    _train(model, optimizer, 4, start=3)
    straight = [p.full_tensor() for p in model.parameters()]

    resumed, resumed_optimizer = sharded()
    state = {"model": get_model_state_dict(resumed), "optimizer": get_optimizer_state_dict(resumed, resumed_optimizer)}
    dcp.load(state, checkpoint_id=directory)
    set_model_state_dict(resumed, state["model"])
    set_optimizer_state_dict(resumed, resumed_optimizer, state["optimizer"])
    _train(resumed, resumed_optimizer, 4, start=3)
    return {"straight": straight, "resumed": [p.full_tensor() for p in resumed.parameters()],
            "step": max(s["step"] for s in resumed_optimizer.state.values())}


def _adamw(params):
    return optimlab.AdamW(params, lr=0.01, weight_decay=0.1)


@pytest.mark.slow
def test_distributed_checkpoint_of_an_fsdp2_model_resumes_exactly(tmp_path):
    result = _spawn(_fsdp2_checkpoint, tmp_path, str(tmp_path / "checkpoint"), _adamw)
    assert result["step"] == 7
    for a, b in zip(result["resumed"], result["straight"], strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(result["straight"][0], _model()[0].weight)
