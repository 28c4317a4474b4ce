"""optimlab.schedules against torch.optim.lr_scheduler (and a hand formula)."""

from __future__ import annotations

import copy
import io
import math
import pickle

import pytest
import torch

import optimlab
from helpers import MLP, PARITY_RTOL, assert_close, params_of, record
from optimlab import schedules

STEPS = 120
sched = torch.optim.lr_scheduler


def _torch_lrs(make_scheduler, lr, steps=STEPS):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


PAIRS = {
    "step_decay": (schedules.step_decay(0.1, step_size=25, gamma=0.5), 0.1,
                   lambda o: sched.StepLR(o, step_size=25, gamma=0.5)),
    "exponential_decay": (schedules.exponential_decay(0.1, gamma=0.97), 0.1,
                          lambda o: sched.ExponentialLR(o, gamma=0.97)),
    "one_cycle": (schedules.one_cycle(0.1, total_steps=STEPS), 0.1,
                  lambda o: sched.OneCycleLR(o, max_lr=0.1, total_steps=STEPS, anneal_strategy="cos",
                                             three_phase=False, cycle_momentum=False)),
}


@pytest.mark.parametrize("name", list(PAIRS))
def test_schedule_matches_torch_scheduler(name):
    schedule, lr, make = PAIRS[name]
    expected = _torch_lrs(make, lr)
    ours = [schedule(t) for t in range(STEPS)]
    assert len(set(ours)) > 2
    for t, (a, e) in enumerate(zip(ours, expected)):
        assert math.isclose(a, e, rel_tol=1e-12, abs_tol=1e-15), (t, a, e)


def test_cosine_decay_matches_cosine_annealing_closed_form():
    schedule = schedules.cosine_decay(0.1, decay_steps=100, end_value=0.001)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = sched.CosineAnnealingLR(optimizer, T_max=100, eta_min=0.001)
    for t in range(101):
        scheduler.last_epoch = t
        expected = scheduler._get_closed_form_lr()[0]
        assert math.isclose(schedule(t), expected, rel_tol=1e-12, abs_tol=1e-15), t
    # ... and within round-off of the recursive form torch steps with.
    recursive = _torch_lrs(lambda o: sched.CosineAnnealingLR(o, T_max=100, eta_min=0.001), 0.1, 101)
    for t in range(101):
        assert math.isclose(schedule(t), recursive[t], rel_tol=1e-9, abs_tol=1e-12), t
    assert schedule(150) == pytest.approx(0.001)  # then constant


def test_warmup_cosine_matches_hand_formula():
    peak, warmup, total, init, end = 0.2, 10, 100, 0.01, 0.002
    schedule = schedules.warmup_cosine(peak, warmup_steps=warmup, decay_steps=total, init_value=init, end_value=end)
    for t in range(130):
        if t < warmup:
            expected = init + (peak - init) * t / warmup
        else:
            progress = min(t - warmup, total - warmup) / (total - warmup)
            expected = end + 0.5 * (peak - end) * (1 + math.cos(math.pi * progress))
        assert math.isclose(schedule(t), expected, rel_tol=1e-12, abs_tol=1e-15), t


def test_join():
    schedule = schedules.join([schedules.constant(0.5), schedules.exponential_decay(0.1, 0.5)], [3])
    assert [schedule(t) for t in range(6)] == [0.5, 0.5, 0.5, 0.1, 0.05, 0.025]
    with pytest.raises(ValueError, match="boundaries must have one entry fewer"):
        schedules.join([schedules.constant(0.5)], [3])


@pytest.mark.parametrize("name", list(PAIRS) + ["cosine_decay"])
@pytest.mark.usefixtures("float64")
def test_optimizer_with_schedule_matches_torch_scheduler(name):
    if name == "cosine_decay":
        schedule, lr = schedules.cosine_decay(0.05, decay_steps=STEPS), 0.05
        make = lambda o: sched.CosineAnnealingLR(o, T_max=STEPS)  # noqa: E731
    else:
        schedule, lr, make = PAIRS[name]
    model = MLP()
    twin = copy.deepcopy(model)
    ours = optimlab.Adam(model.parameters(), lr=schedule)
    theirs = torch.optim.Adam(twin.parameters(), lr=lr, foreach=False)
    scheduler = make(theirs)
    for _ in range(STEPS):
        for optimizer, m in ((ours, model), (theirs, twin)):
            optimizer.zero_grad()
            m.loss().backward()
            optimizer.step()
        scheduler.step()
    rtol = PARITY_RTOL if name != "cosine_decay" else 1e-8  # torch's recursive form drifts from the closed form
    worst = assert_close(params_of(model), params_of(twin), rtol, name)
    record(f"schedule as lr: {name}", worst)


EVERY_SCHEDULE = [
    schedules.constant(0.1), schedules.step_decay(0.1, 10), schedules.exponential_decay(0.1, 0.9),
    schedules.cosine_decay(0.1, 50), schedules.linear(0.0, 0.1, 20), schedules.one_cycle(0.1, 100),
    schedules.warmup_cosine(0.1, 5, 50),
]


def test_every_schedule_is_tested():
    defined = {cls for cls in vars(schedules).values()
               if isinstance(cls, type) and issubclass(cls, schedules.Schedule) and cls is not schedules.Schedule}
    assert defined == {type(s) for s in EVERY_SCHEDULE}


@pytest.mark.parametrize("schedule", EVERY_SCHEDULE, ids=lambda s: type(s).__name__)
def test_schedules_pickle(schedule):
    restored = pickle.loads(pickle.dumps(schedule))
    assert [restored(t) for t in range(60)] == [schedule(t) for t in range(60)]


def _weights_only_round_trip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("schedule", EVERY_SCHEDULE, ids=lambda s: type(s).__name__)
def test_schedule_as_lr_loads_with_weights_only(schedule):
    """Lightning resumes with torch.load(weights_only=True): a schedule given as lr is in
    the optimizer's state_dict and must load there (it raised "Unsupported global")."""
    model = MLP()
    optimizer = optimlab.Adam(model.parameters(), lr=schedule)
    restored = _weights_only_round_trip(optimizer.state_dict())["param_groups"][0]["lr"]
    assert restored == schedule and [restored(t) for t in range(60)] == [schedule(t) for t in range(60)]


@pytest.mark.parametrize("schedule", EVERY_SCHEDULE, ids=lambda s: type(s).__name__)
def test_schedule_lr_steps_as_the_schedule_given_as_lr(schedule):
    """ScheduleLR over a torch.optim optimizer takes the learning rates optimlab takes from
    the same schedule as lr; its state_dict loads with weights_only and resumes."""
    model = MLP()
    twin = copy.deepcopy(model)
    ours = optimlab.SGD(model.parameters(), lr=schedule, momentum=0.9)
    theirs = torch.optim.SGD(twin.parameters(), lr=1.0, momentum=0.9)
    scheduler = optimlab.schedules.ScheduleLR(theirs, schedule)
    for i in range(30):
        if i == 12:
            saved = _weights_only_round_trip({"optimizer": theirs.state_dict(), "scheduler": scheduler.state_dict()})
            scheduler = optimlab.schedules.ScheduleLR(theirs, schedules.constant(0.0))
            theirs.load_state_dict(saved["optimizer"])  # as a resume does: the optimizer, then its scheduler
            scheduler.load_state_dict(saved["scheduler"])
        assert scheduler.get_last_lr() == [schedule(i)]
        for optimizer, m in ((ours, model), (theirs, twin)):
            optimizer.zero_grad()
            m.loss().backward()
            optimizer.step()
        scheduler.step()
    assert_close(params_of(model), params_of(twin), 0.0, type(schedule).__name__)


def test_schedule_lr_takes_over_the_groups_schedules():
    """Hugging Face's Trainer multiplies the groups' lr by its scheduler's factors: with
    ScheduleLR taking over the schedules, the groups hold numbers (it raised TypeError)."""
    model = MLP()
    first, second = schedules.warmup_cosine(0.1, 5, 50), schedules.constant(0.01)
    optimizer = optimlab.Adam([{"params": model.first.parameters(), "lr": first},
                               {"params": model.second.parameters(), "lr": second}])
    scheduler = optimlab.schedules.ScheduleLR(optimizer)
    assert [g["lr"] for g in optimizer.param_groups] == [first(0), second(0)]
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    assert [g["lr"] * 1.0 for g in optimizer.param_groups] == [first(7), second(7)]
    with pytest.raises(ValueError, match=r"schedule must be given: param_groups\[0\]\['lr'\] is 0.1"):
        optimlab.schedules.ScheduleLR(torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match=r"schedule must be one schedule or a list of 2"):
        optimlab.schedules.ScheduleLR(optimizer, [first])


def test_optimizer_class_has_the_torch_class_shape():
    """What Hugging Face's optimizer_cls_and_kwargs calls: cls(params, **kwargs)."""
    cls = optimlab.optimizer_class("nesterov")
    model, twin = MLP(), MLP()
    ours = cls(model.parameters(), lr=0.05)
    theirs = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    assert isinstance(ours, optimlab.SGD) and ours.defaults["nesterov"] is True
    for optimizer, m in ((ours, model), (theirs, twin)):
        for _ in range(5):
            optimizer.zero_grad()
            m.loss().backward()
            optimizer.step()
    assert_close(params_of(model), params_of(twin), 1e-12, "nesterov")
    with pytest.raises(ValueError, match=r"unknown optimizer 'nesterow'"):
        optimlab.optimizer_class("nesterow")


def test_schedule_errors():
    with pytest.raises(ValueError, match=r"step_size must be > 0, got 0"):
        schedules.step_decay(0.1, 0)
    with pytest.raises(ValueError, match=r"init_value must be >= 0, got -0.1"):
        schedules.exponential_decay(-0.1, 0.9)
    with pytest.raises(ValueError, match=r"decay_steps must be > warmup_steps \(10\), got 5"):
        schedules.warmup_cosine(0.1, 10, 5)
