"""optimlab in Hugging Face's Trainer (the ``integration`` extra), against the torch.optim
twin: ``optimizers=`` with a ScheduleLR, ``optimizer_cls_and_kwargs=`` by name, and a resume
from a checkpoint that equals the uninterrupted run. The model is built from a config:
nothing is downloaded (the hub is off)."""

from __future__ import annotations

import os

import pytest
import torch

import optimlab

for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(variable, "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]

STEPS, SAVE_AT = 8, 4
_TOKENS = torch.randint(0, 32, (16, 12), generator=torch.Generator().manual_seed(0))
DATASET = [{"input_ids": row, "labels": row} for row in _TOKENS]


def _model():
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=32, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    return transformers.GPT2LMHeadModel(config).double()


def _train(root, resume=False, **trainer_options):
    model = _model()
    options = trainer_options.pop("make_optimizers", None)
    if options is not None:
        trainer_options["optimizers"] = options(model)
    args = transformers.TrainingArguments(
        output_dir=str(root), max_steps=STEPS, save_steps=SAVE_AT, per_device_train_batch_size=4,
        learning_rate=0.01, max_grad_norm=0.5, report_to=[], use_cpu=True, seed=0, logging_steps=100,
        dataloader_num_workers=0, disable_tqdm=True,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=DATASET, **trainer_options)
    trainer.train(resume_from_checkpoint=str(root / f"checkpoint-{SAVE_AT}") if resume else None)
    return [p.detach().clone() for p in model.parameters()]


def _close(a, b, rtol):
    worst = max(((x - y).abs().max() / y.abs().max()).item() for x, y in zip(a, b, strict=True))
    assert worst <= rtol, worst


def _schedule():
    return optimlab.schedules.warmup_cosine(0.02, 2, STEPS)


def _ours(model):
    """The schedule given as lr, its ScheduleLR taking it over (HF's Trainer multiplies
    the groups' lr by its scheduler's factors: a schedule there raised TypeError)."""
    optimizer = optimlab.AdamW(model.parameters(), lr=_schedule(), weight_decay=0.1)
    return optimizer, optimlab.schedules.ScheduleLR(optimizer)


def _theirs(model):
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.1, foreach=False)
    return optimizer, optimlab.schedules.ScheduleLR(optimizer, _schedule())


def test_hf_trainer_with_optimizers_and_resume(tmp_path):
    straight = _train(tmp_path / "ours", make_optimizers=_ours)
    assert not torch.equal(straight[0], next(_model().parameters()))
    _close(straight, _train(tmp_path / "torch", make_optimizers=_theirs), 1e-10)
    resumed = _train(tmp_path / "ours", resume=True, make_optimizers=_ours)
    _close(resumed, straight, 0.0)


def test_hf_trainer_with_optimizer_cls_and_kwargs_by_name(tmp_path):
    kwargs = {"lr": 0.01, "momentum": 0.9}
    ours = _train(tmp_path / "ours", optimizer_cls_and_kwargs=(optimlab.optimizer_class("nesterov"), kwargs))
    theirs = _train(tmp_path / "torch", optimizer_cls_and_kwargs=(torch.optim.SGD, {**kwargs, "nesterov": True}))
    assert not torch.equal(ours[0], next(_model().parameters()))
    _close(ours, theirs, 1e-10)
    resumed = _train(tmp_path / "ours", resume=True,
                     optimizer_cls_and_kwargs=(optimlab.optimizer_class("nesterov"), kwargs))
    _close(resumed, ours, 0.0)
