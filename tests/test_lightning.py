"""optimlab in Lightning's Trainer (the ``integration`` extra), against the torch.optim twin:
a scheduler dict stepping per batch, gradient clipping, ModelCheckpoint, and a resume from
the checkpoint that equals the uninterrupted run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import optimlab

L = pytest.importorskip("lightning")

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

BATCHES, EPOCHS = 6, 4

_X = torch.randn(BATCHES * 8, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
_Y = torch.randn(BATCHES * 8, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

# Each: the optimizer and scheduler of configure_optimizers, for one side.
SETUPS = {
    "adamw+onecycle": {
        "optimlab": lambda ps: optimlab.AdamW(ps, lr=0.02, weight_decay=0.1),
        "torch": lambda ps: torch.optim.AdamW(ps, lr=0.02, weight_decay=0.1, foreach=False),
        "scheduler": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=BATCHES * EPOCHS),
    },
    "nesterov+schedule": {
        "optimlab": lambda ps: optimlab.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
        "torch": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
        "scheduler": lambda o: optimlab.schedules.ScheduleLR(
            o, optimlab.schedules.warmup_cosine(0.05, 5, BATCHES * EPOCHS)),
    },
}


class Regression(L.LightningModule):
    def __init__(self, make_optimizer, make_scheduler):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)).double()
        self.make_optimizer, self.make_scheduler = make_optimizer, make_scheduler

    def training_step(self, batch, index):
        x, y = batch
        return (self.net(x) - y).pow(2).mean()

    def configure_optimizers(self):
        optimizer = self.make_optimizer(self.parameters())
        if self.make_scheduler is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": self.make_scheduler(optimizer), "interval": "step"}}

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(_X, _Y), batch_size=8)


def _fit(root, make_optimizer, make_scheduler, epochs, resume_from=None):
    module = Regression(make_optimizer, make_scheduler)
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=root, save_last=True, save_top_k=-1,
                                                     every_n_epochs=1)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, gradient_clip_val=0.05,
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[checkpoint], default_root_dir=root)
    trainer.fit(module, ckpt_path=resume_from)
    return [p.detach().clone() for p in module.parameters()], checkpoint


def _equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def _close(a, b, rtol):
    return max(((x - y).abs().max() / y.abs().max()).item() for x, y in zip(a, b, strict=True)) <= rtol


@pytest.mark.parametrize("setup", list(SETUPS))
def test_lightning_trainer_with_scheduler_clipping_and_resume(setup, tmp_path):
    spec = SETUPS[setup]
    ours, _ = _fit(tmp_path / "straight", spec["optimlab"], spec["scheduler"], EPOCHS)
    theirs, _ = _fit(tmp_path / "torch", spec["torch"], spec["scheduler"], EPOCHS)
    assert _close(ours, theirs, 1e-10)
    _, checkpoint = _fit(tmp_path / "resumed", spec["optimlab"], spec["scheduler"], EPOCHS // 2)
    resumed, _ = _fit(tmp_path / "resumed", spec["optimlab"], spec["scheduler"], EPOCHS,
                      resume_from=checkpoint.last_model_path)
    assert _equal(resumed, ours)


def test_lightning_resumes_a_schedule_given_as_lr(tmp_path):
    """Lightning's resume loads with weights_only=True: the schedule in the optimizer's
    state must load there (it raised "Unsupported global: GLOBAL optimlab.schedules.join")."""
    schedule = optimlab.schedules.warmup_cosine(0.05, 5, BATCHES * EPOCHS)

    def make(ps):
        return optimlab.Adam(ps, lr=schedule)

    straight, _ = _fit(tmp_path / "straight", make, None, EPOCHS)
    _, checkpoint = _fit(tmp_path / "resumed", make, None, EPOCHS // 2)
    resumed, _ = _fit(tmp_path / "resumed", make, None, EPOCHS, resume_from=checkpoint.last_model_path)
    assert _equal(resumed, straight)
