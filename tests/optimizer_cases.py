"""The one registry of optimizers that drives the optimizer test suite.

Every test module is parametrized from `CASES`: adding an optimizer to optimlab is tested
by adding one `Case` here (and, for a new algorithm, one formula to
``reference_numpy.py``); test_api checks that the cases and the catalog hold the same names.

A `Case` holds, for one name of `optimlab.create`:

* ``cls``/``preset``: the optimlab class and the keyword arguments the name implies;
* ``torch_cls``/``torch_preset``: the torch.optim twin (None when torch has none);
* ``samples``: keyword-argument dicts that together cover every option of the algorithm
  (each is the constructor's defaults; the parity tests give the second param group
  ``group2`` overrides on top, so groups differ);
* ``reference``: the float64 NumPy step (``reference_numpy.py``), written from the papers;
* ``errors``: ``(kwargs, message regex)`` pairs that must raise ValueError;
* ``quadratic``/``rosenbrock``: ``(kwargs, steps, tolerance)`` convergence budgets;
* ``supports_sparse``/``supports_complex``;
* ``matrices_only``: the optimizer is defined for 2-D parameters only (Muon): `Case.make`
  and `Case.make_torch` keep the matrices of the parameters a test hands them (an MLP's
  weights, not its biases), and tests that build their own parameters lay them out as
  matrices;
* ``fused``: the fused kernel covers the chain (Muon's orthogonalization and Adafactor's
  factored moments are not elementwise: the fused path falls back to the eager one), or a
  predicate of the sample where it covers some samples only (Prodigy's ``slice_p > 1``);
* ``reference_preset``: options the comparison with the float64 NumPy formula adds
  (Muon: its Newton-Schulz iteration in float64, not torch's bfloat16);
* ``group_reference``: the reference steps the param group's tensors together,
  ``xs = reference(xs, gs, state, t, hp)`` (Prodigy's and D-Adaptation's step size is a sum
  over the group);
* ``train_eval``: the optimizer has ``train()``/``eval()`` (Schedule-Free): `Case.make`
  returns it in train mode, the reference keeps the point ``eval()`` sets in ``state["x"]``,
  and the convergence tests measure that point.

``ALL_SAMPLES`` holds every ``(case, sample)``; ``SAMPLES`` those the fused kernel covers
(test_fast_path's); ``TORCH_SAMPLES`` those with a torch.optim twin.

Convergence budgets (distance to the known minimizer after ``steps`` steps; the
quadratic is 10-D with condition number 100, minimizer ``X_STAR_QUADRATIC``, start at
the origin; Rosenbrock 2-D from (-1.2, 1), minimizer (1, 1)):

==================  ==========================================  ==========================================
name                quadratic: kwargs, steps, tol               rosenbrock: kwargs, steps, tol
==================  ==========================================  ==========================================
gd                  lr=0.019, 900, 1e-6                         lr=1.5e-3, 10000, 1e-2
sgd                 lr=0.01 momentum=0.9, 400, 1e-6             lr=5e-4 momentum=0.9, 4500, 1e-3
momentum            lr=0.01, 400, 1e-6                          lr=5e-4, 4500, 1e-3
ema_momentum        lr=0.1, 400, 1e-6                           lr=5e-3, 4500, 1e-3
nesterov            lr=0.01, 400, 1e-6                          lr=5e-4, 4500, 1e-3
adagrad             lr=0.5, 1000, 1e-6                          lr=0.5, 11000, 1e-3
adadelta            lr=0.1, 3000, 2e-2 (hovers, never settles)  lr=0.1, 6500, 5e-2
rmsprop(_centered)  lr=1e-3 momentum=0.9, 2000, 5e-3 (hovers)   lr=1e-3 momentum=0.9, 1500, 1e-2
adam / adamw(wd=0)  lr=0.05, 600, 1e-3                          lr=0.02, 3300, 1e-2
amsgrad             lr=0.05, 650, 1e-3                          lr=0.02, 6000, 1e-2
adamax              lr=0.05, 2000, 1e-3                         lr=0.02, 5500, 1e-2
nadam               lr=0.02, 2400, 1e-3                         lr=0.01, 7000, 1e-2
radam               lr=0.05, 2800, 1e-3                         lr=5e-3, 11000, 1e-2
adabelief           lr=0.1, 270, 1e-3                           lr=0.01, 4350, 1e-2
adopt               lr=0.1, 2170, 1e-3                          lr=0.1, 13670, 1e-2
ademamix            lr=0.05 beta3=0.99, 760, 1e-3               lr=0.02, 11400, 1e-2
mars                lr=0.05*0.995^t, 310, 1e-3                  lr=0.02, 410, 1e-2
lion                lr=0.05*0.99^t, 750, 1e-3                   lr=0.02*0.999^t, 2500, 1e-2
muon (2x5, 2x1)     lr=0.1*0.98^t, 360, 1e-3                    lr=0.05*0.995^t, 950, 1e-2
adafactor           lr=1.0*0.99^t, 450, 1e-3                    lr=0.03*0.9995^t, 6450, 1e-2
soap (1-D precond.) lr=0.05*0.99^t wd=0, 490, 1e-3              lr=0.02 wd=0, 550, 1e-2
shampoo (1-D prec.) lr=0.05, 200, 1e-3                          lr=0.01, 13700, 1e-2
psgd_kron (tri.)    lr=0.1*0.98^t, 190, 1e-3                    lr=0.05*0.998^t, 2100, 1e-2
swats               lr=0.02, 2050, 1e-3                         lr=0.3, 13400, 1e-3
lamb                lr=0.05*0.99^t, 650, 1e-3                   lr=0.05*0.998^t, 2100, 1e-2
lars                lr=30*0.99^t, 500, 1e-3                     lr=10*0.999^t, 1900, 1e-2
cautious_adamw      lr=0.05 (wd=0), 600, 1e-3                   lr=0.01 (wd=0), 6100, 1e-2
cautious_lion       lr=0.05*0.99^t, 850, 1e-3                   lr=0.02*0.999^t, 1500, 1e-2
schedulefree_sgd    lr=0.015, 3850, 1e-3                        lr=3e-3 r=1 warmup=100, 13800, 1e-2
schedulefree_adamw  lr=0.05, 2900, 1e-3                         lr=0.02, 9900, 1e-2
prodigy             defaults, 210, 1e-3                         lr=1.0*0.9995^t, 5600, 1e-2
dadapt_adam         lr=1.0*0.999^t, 210, 1e-3                   lr=1.0*0.999^t, 490, 1e-2
==================  ==========================================  ==========================================

Budgets are ~1.3x the step from which the distance stays below the tolerance
(Schedule-Free: at the average x, the point ``eval()`` sets).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

import optimlab
import reference_numpy as ref

LR_NEG = ({"lr": -1}, r"lr must be >= 0, got -1\b")
LR_NAN = ({"lr": float("nan")}, r"lr must be finite, got nan")
LR_INF = ({"lr": float("inf")}, r"lr must be finite, got inf")
WD_NEG = ({"weight_decay": -0.1}, r"weight_decay must be >= 0, got -0.1")
EPS_ZERO = ({"eps": 0.0}, r"eps must be > 0, got 0.0")
EPS_NEG = ({"eps": -1e-8}, r"eps must be > 0, got -1e-08")
EPS_INF = ({"eps": float("inf")}, r"eps must be finite, got inf")
BETA1_ONE = ({"betas": (1.0, 0.999)}, r"betas\[0\] must be in \[0, 1\), got 1.0")
BETA2_NEG = ({"betas": (0.9, -0.1)}, r"betas\[1\] must be in \[0, 1\), got -0.1")
BETA2_BIG = ({"betas": (0.9, 1.5)}, r"betas\[1\] must be in \[0, 1\), got 1.5")
BETAS_SHAPE = ({"betas": (0.9,)}, r"betas must be a pair \(beta1, beta2\), got \(0.9,\)")
MAXIMIZE_BAD = ({"maximize": 1}, r"maximize must be True or False, got 1")
COMMON_ERRORS = [LR_NEG, LR_NAN, LR_INF, WD_NEG, MAXIMIZE_BAD]
ADAM_HYPERPARAMETER_ERRORS = [EPS_ZERO, EPS_NEG, EPS_INF, BETA1_ONE, BETA2_NEG, BETA2_BIG, BETAS_SHAPE]
ADAM_ERRORS = COMMON_ERRORS + ADAM_HYPERPARAMETER_ERRORS
LR_WD_ERRORS = [LR_NEG, LR_NAN, LR_INF, WD_NEG]  # optimizers without a maximize option
SGD_ERRORS = COMMON_ERRORS + [
    ({"momentum": -0.5}, r"momentum must be >= 0, got -0.5"),
    ({"dampening": -0.5}, r"dampening must be >= 0, got -0.5"),
    ({"nesterov": True, "momentum": 0.0}, r"nesterov=True requires momentum > 0 and dampening = 0, got momentum=0.0"),
    ({"nesterov": True, "momentum": 0.9, "dampening": 0.1},
     r"nesterov=True requires momentum > 0 and dampening = 0, got momentum=0.9, dampening=0.1"),
]


@dataclass(frozen=True)
class Case:
    name: str
    cls: type
    reference: Callable | None  # None: no NumPy formula (the Case says why)
    samples: list[dict[str, Any]]
    errors: list[tuple[dict[str, Any], str]]
    quadratic: tuple[dict[str, Any], int, float]
    rosenbrock: tuple[dict[str, Any], int, float]
    preset: dict[str, Any] = field(default_factory=dict)
    torch_cls: type | None = None
    torch_preset: dict[str, Any] = field(default_factory=dict)
    group2: dict[str, Any] = field(default_factory=dict)  # extra options of param group 2
    supports_sparse: bool = False
    supports_complex: bool = True
    matrices_only: bool = False
    fused: bool | Callable[[dict[str, Any]], bool] = True
    reference_preset: dict[str, Any] = field(default_factory=dict)
    group_reference: bool = False
    train_eval: bool = False

    def fuses(self, sample: dict[str, Any]) -> bool:
        """Whether the fused kernel covers the chain with the ``sample``'s options."""
        return self.fused(sample) if callable(self.fused) else self.fused

    def make(self, params, **kwargs) -> optimlab.Optimizer:
        optimizer = self.cls(self.accepted(params), **{**self.preset, **kwargs})
        return self.ready(optimizer)

    def ready(self, optimizer):
        """``optimizer`` ready to step: in train mode where it has one (Schedule-Free)."""
        if self.train_eval:
            optimizer.train()
        return optimizer

    def make_torch(self, params, **kwargs) -> torch.optim.Optimizer:
        # torch.optim.Muon has one execution path and no foreach argument.
        takes = inspect.signature(self.torch_cls).parameters
        kwargs = {k: v for k, v in {**self.torch_preset, **kwargs}.items()
                  if k in takes or k not in ("foreach", "fused")}
        return self.torch_cls(self.accepted(params), **kwargs)

    def accepted(self, params):
        """The parameters (or param groups) the optimizer takes of ``params``: all, or the matrices."""
        if not self.matrices_only:
            return params
        params = list(params)
        if params and isinstance(params[0], dict):
            return [{**group, "params": self.accepted(group["params"])} for group in params]
        return [p for p in params if p.ndim == 2]

    def hyperparams(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Every hyperparameter the sample runs with: class defaults, preset, sample."""
        defaults = {
            k: v.default
            for k, v in inspect.signature(self.cls.__init__).parameters.items()
            if v.default is not inspect.Parameter.empty and k not in ("foreach", "differentiable", "fused", "capturable")
        }
        return {**defaults, **self.preset, **sample}

    def __str__(self) -> str:
        return self.name


def sample_id(sample: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sample.items()) or "defaults"


CASES: list[Case] = [
    Case(
        "gd", optimlab.SGD, ref.sgd,
        samples=[{"lr": 0.05}, {"lr": 0.05, "weight_decay": 0.01}, {"lr": 0.05, "maximize": True}],
        errors=SGD_ERRORS,
        torch_cls=torch.optim.SGD, supports_sparse=True,
        quadratic=({"lr": 0.019}, 900, 1e-6),
        rosenbrock=({"lr": 1.5e-3}, 10000, 1e-2),
    ),
    Case(
        "sgd", optimlab.SGD, ref.sgd,
        samples=[
            {"lr": 0.05, "momentum": 0.9},
            {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01},
            {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.02},
            {"lr": 0.05, "momentum": 0.5, "maximize": True},
        ],
        errors=SGD_ERRORS,
        torch_cls=torch.optim.SGD, supports_sparse=True,
        quadratic=({"lr": 0.01, "momentum": 0.9}, 400, 1e-6),
        rosenbrock=({"lr": 5e-4, "momentum": 0.9}, 4500, 1e-3),
    ),
    Case(
        "momentum", optimlab.SGD, ref.sgd, preset={"momentum": 0.9},
        samples=[{"lr": 0.02}, {"lr": 0.02, "momentum": 0.7, "dampening": 0.1, "weight_decay": 0.01}],
        errors=SGD_ERRORS,
        torch_cls=torch.optim.SGD, torch_preset={"momentum": 0.9}, supports_sparse=True,
        quadratic=({"lr": 0.01}, 400, 1e-6),
        rosenbrock=({"lr": 5e-4}, 4500, 1e-3),
    ),
    Case(
        "ema_momentum", optimlab.EMAMomentum, ref.ema_momentum,
        samples=[{"lr": 0.05}, {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.01}, {"lr": 0.05, "maximize": True}],
        errors=COMMON_ERRORS + [
            ({"momentum": -0.1}, r"momentum must be in \[0, 1\), got -0.1"),
            ({"momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
        ],
        quadratic=({"lr": 0.1}, 400, 1e-6),
        rosenbrock=({"lr": 5e-3}, 4500, 1e-3),
    ),
    Case(
        "nesterov", optimlab.SGD, ref.sgd, preset={"momentum": 0.9, "nesterov": True},
        samples=[{"lr": 0.02}, {"lr": 0.02, "momentum": 0.5, "weight_decay": 0.01, "maximize": True}],
        errors=SGD_ERRORS,
        torch_cls=torch.optim.SGD, torch_preset={"momentum": 0.9, "nesterov": True}, supports_sparse=True,
        quadratic=({"lr": 0.01}, 400, 1e-6),
        rosenbrock=({"lr": 5e-4}, 4500, 1e-3),
    ),
    Case(
        "adagrad", optimlab.Adagrad, ref.adagrad,
        samples=[
            {"lr": 0.1},
            {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.01},
            {"lr": 0.1, "initial_accumulator_value": 0.1, "eps": 1e-6, "maximize": True},
        ],
        errors=COMMON_ERRORS + [
            EPS_ZERO, EPS_INF,
            ({"initial_accumulator_value": -0.1}, r"initial_accumulator_value must be >= 0, got -0.1"),
            ({"lr_decay": -0.1}, r"lr_decay must be >= 0, got -0.1"),
        ],
        torch_cls=torch.optim.Adagrad, supports_sparse=True,
        quadratic=({"lr": 0.5}, 1000, 1e-6),
        rosenbrock=({"lr": 0.5}, 11000, 1e-3),
    ),
    Case(
        "adadelta", optimlab.Adadelta, ref.adadelta,
        samples=[{"lr": 1.0}, {"lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 0.01}, {"lr": 1.0, "maximize": True}],
        errors=COMMON_ERRORS + [
            EPS_ZERO, EPS_INF,
            ({"rho": 1.5}, r"rho must be in \[0, 1\], got 1.5"),
            ({"rho": -0.1}, r"rho must be in \[0, 1\], got -0.1"),
        ],
        torch_cls=torch.optim.Adadelta,
        quadratic=({"lr": 0.1}, 3000, 2e-2),  # Adadelta hovers near the minimum, it does not settle
        rosenbrock=({"lr": 0.1}, 6500, 5e-2),
    ),
    Case(
        "rmsprop", optimlab.RMSprop, ref.rmsprop,
        samples=[
            {"lr": 0.01},
            {"lr": 0.01, "alpha": 0.9, "eps": 1e-6, "momentum": 0.5, "weight_decay": 0.01},
            {"lr": 0.01, "centered": True, "momentum": 0.9, "maximize": True},
        ],
        errors=COMMON_ERRORS + [
            EPS_ZERO, EPS_INF,
            ({"alpha": 1.5}, r"alpha must be in \[0, 1\], got 1.5"),
            ({"momentum": -0.5}, r"momentum must be >= 0, got -0.5"),
        ],
        torch_cls=torch.optim.RMSprop,
        quadratic=({"lr": 1e-3, "momentum": 0.9}, 2000, 5e-3),  # RMSprop hovers within ~lr of the minimum
        rosenbrock=({"lr": 1e-3, "momentum": 0.9}, 1500, 1e-2),
    ),
    Case(
        "rmsprop_centered", optimlab.RMSprop, ref.rmsprop, preset={"centered": True},
        samples=[{"lr": 0.01}, {"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "weight_decay": 0.01}],
        errors=COMMON_ERRORS + [EPS_ZERO, ({"alpha": -0.5}, r"alpha must be in \[0, 1\], got -0.5"),
                                ({"momentum": -1.0}, r"momentum must be >= 0, got -1.0")],
        torch_cls=torch.optim.RMSprop, torch_preset={"centered": True},
        quadratic=({"lr": 1e-3, "momentum": 0.9}, 2000, 5e-3),  # RMSprop hovers within ~lr of the minimum
        rosenbrock=({"lr": 1e-3, "momentum": 0.9}, 1500, 1e-2),
    ),
    Case(
        "adam", optimlab.Adam, ref.adam,
        samples=[
            {"lr": 0.01},
            {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01},
            {"lr": 0.01, "weight_decay": 0.05, "decoupled_weight_decay": True},
            {"lr": 0.01, "amsgrad": True, "maximize": True},
        ],
        errors=ADAM_ERRORS + [({"amsgrad": "yes"}, r"amsgrad must be True or False, got 'yes'")],
        torch_cls=torch.optim.Adam,
        quadratic=({"lr": 0.05}, 600, 1e-3),
        rosenbrock=({"lr": 0.02}, 3300, 1e-2),
    ),
    Case(
        "adamw", optimlab.AdamW, ref.adamw,
        samples=[{"lr": 0.01}, {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1, "amsgrad": True},
                 {"lr": 0.01, "maximize": True}],
        errors=ADAM_ERRORS,
        torch_cls=torch.optim.AdamW,
        quadratic=({"lr": 0.05, "weight_decay": 0.0}, 600, 1e-3),
        rosenbrock=({"lr": 0.02, "weight_decay": 0.0}, 3300, 1e-2),
    ),
    Case(
        "amsgrad", optimlab.Adam, ref.adam, preset={"amsgrad": True},
        samples=[{"lr": 0.01}, {"lr": 0.01, "betas": (0.5, 0.9), "weight_decay": 0.01}],
        errors=ADAM_ERRORS,
        torch_cls=torch.optim.Adam, torch_preset={"amsgrad": True},
        quadratic=({"lr": 0.05}, 650, 1e-3),
        rosenbrock=({"lr": 0.02}, 6000, 1e-2),
    ),
    Case(
        "adamax", optimlab.Adamax, ref.adamax,
        samples=[{"lr": 0.01}, {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01},
                 {"lr": 0.01, "maximize": True}],
        errors=ADAM_ERRORS,
        torch_cls=torch.optim.Adamax,
        quadratic=({"lr": 0.05}, 2000, 1e-3),
        rosenbrock=({"lr": 0.02}, 5500, 1e-2),
    ),
    Case(
        "nadam", optimlab.NAdam, ref.nadam,
        samples=[
            {"lr": 0.003},
            {"lr": 0.003, "betas": (0.8, 0.99), "eps": 1e-6, "momentum_decay": 0.01, "weight_decay": 0.01},
            {"lr": 0.003, "weight_decay": 0.05, "decoupled_weight_decay": True, "maximize": True},
        ],
        errors=ADAM_ERRORS + [({"momentum_decay": -1e-3}, r"momentum_decay must be >= 0, got -0.001")],
        torch_cls=torch.optim.NAdam,
        quadratic=({"lr": 0.02}, 2400, 1e-3),
        rosenbrock=({"lr": 0.01}, 7000, 1e-2),
    ),
    Case(
        "radam", optimlab.RAdam, ref.radam,
        samples=[
            {"lr": 0.01},
            {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01},
            {"lr": 0.01, "weight_decay": 0.05, "decoupled_weight_decay": True, "maximize": True},
        ],
        errors=ADAM_ERRORS,
        torch_cls=torch.optim.RAdam,
        quadratic=({"lr": 0.05}, 2800, 1e-3),
        rosenbrock=({"lr": 0.005}, 11000, 1e-2),
    ),
    Case(
        # No torch.optim twin: tests/test_adabelief.py compares it with pytorch-optimizer's.
        "adabelief", optimlab.AdaBelief, ref.adabelief,
        samples=[
            {"lr": 0.01},
            {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-8, "weight_decay": 0.01, "decoupled_weight_decay": False},
            {"lr": 0.01, "weight_decay": 0.05, "maximize": True},
        ],
        errors=ADAM_ERRORS,
        quadratic=({"lr": 0.1}, 270, 1e-3),
        rosenbrock=({"lr": 0.01}, 4350, 1e-2),
    ),
    Case(
        # No torch.optim twin: tests/test_adopt_ademamix_mars.py compares it with pytorch-optimizer's.
        "adopt", optimlab.ADOPT, ref.adopt,
        samples=[
            {"lr": 0.01},
            {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-8, "weight_decay": 0.01},
            {"lr": 0.01, "weight_decay": 0.05, "decoupled_weight_decay": True, "clip_lambda": None, "maximize": True},
        ],
        errors=ADAM_ERRORS + [
            ({"clip_lambda": 1.0}, r"clip_lambda must be None or a callable from the step to a bound, got 1.0"),
        ],
        quadratic=({"lr": 0.1}, 2170, 1e-3),
        rosenbrock=({"lr": 0.1}, 13670, 1e-2),
    ),
    Case(
        # No torch.optim twin: tests/test_adopt_ademamix_mars.py compares it with pytorch-optimizer's.
        "ademamix", optimlab.AdEMAMix, ref.ademamix,
        samples=[
            {"lr": 0.01},
            {"lr": 0.01, "betas": (0.8, 0.99, 0.999), "alpha": 2.0, "t_alpha_beta3": 50, "eps": 1e-6,
             "weight_decay": 0.01, "decoupled_weight_decay": False},
            {"lr": 0.01, "t_alpha_beta3": 1000, "weight_decay": 0.05, "maximize": True},
        ],
        errors=COMMON_ERRORS + [
            EPS_ZERO, EPS_INF,
            ({"betas": (0.9, 0.999)}, r"betas must be a triple \(beta1, beta2, beta3\), got \(0.9, 0.999\)"),
            ({"betas": (0.9, 0.999, 1.0)}, r"betas\[2\] must be in \[0, 1\), got 1.0"),
            ({"alpha": -1.0}, r"alpha must be >= 0, got -1.0"),
            ({"t_alpha_beta3": 0}, r"t_alpha_beta3 must be > 0, got 0"),
        ],
        # The slow EMA (beta3 = 0.9999) keeps pushing past the quadratic's minimum for ~10k
        # steps; with beta3 = 0.99 it settles.
        quadratic=({"lr": 0.05, "betas": (0.9, 0.999, 0.99)}, 760, 1e-3),
        rosenbrock=({"lr": 0.02}, 11400, 1e-2),
    ),
    Case(
        # No torch.optim twin: tests/test_adopt_ademamix_mars.py compares it with pytorch-optimizer's.
        # c_t stays under norm 1 on the MLP; it is clipped on test_reference's noisy quadratic
        # and in the comparison with pytorch-optimizer's (a scaled loss).
        "mars", optimlab.MARS, ref.mars,
        samples=[
            {"lr": 0.01},
            {"lr": 0.01, "betas": (0.9, 0.99), "gamma": 0.1, "eps": 1e-6, "weight_decay": 0.01},
            {"lr": 0.01, "gamma": 0.0, "maximize": True},
        ],
        errors=ADAM_ERRORS + [({"gamma": -0.1}, r"gamma must be >= 0, got -0.1")],
        # Adam-like steps of about lr around the minimum: the quadratic settles as lr decays.
        quadratic=({"lr": optimlab.schedules.exponential_decay(0.05, 0.995)}, 310, 1e-3),
        rosenbrock=({"lr": 0.02}, 410, 1e-2),
    ),
    Case(
        "lion", optimlab.Lion, ref.lion,
        samples=[{"lr": 0.01}, {"lr": 0.01, "betas": (0.8, 0.95), "weight_decay": 0.1},
                 {"lr": 0.01, "maximize": True}],
        errors=COMMON_ERRORS + [BETA1_ONE, BETA2_NEG, BETA2_BIG, BETAS_SHAPE],
        # Every coordinate moves by lr: Lion settles only as the learning rate decays.
        quadratic=({"lr": optimlab.schedules.exponential_decay(0.05, 0.99)}, 750, 1e-3),
        rosenbrock=({"lr": optimlab.schedules.exponential_decay(0.02, 0.999)}, 2500, 1e-2),
    ),
    Case(
        # create("muon") steps the matrices with Muon and the rest with AdamW; given
        # matrices only, it is torch.optim.Muon (Newton-Schulz in bfloat16, as torch's).
        "muon", optimlab.MuonWithAdamW, ref.muon,
        samples=[
            {"lr": 0.02},
            {"lr": 0.02, "momentum": 0.9, "nesterov": False, "weight_decay": 0.01},
            # The quintic whose fixed point is exactly 1 (15/8, -10/8, 3/8), in 3 steps.
            {"lr": 0.02, "adjust_lr_fn": "match_rms_adamw", "ns_coefficients": (1.875, -1.25, 0.375),
             "ns_steps": 3, "eps": 1e-5},
        ],
        errors=COMMON_ERRORS + [
            EPS_ZERO, EPS_INF,
            ({"momentum": -0.1}, r"momentum must be in \[0, 1\), got -0.1"),
            ({"momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
            ({"nesterov": 1}, r"nesterov must be True or False, got 1"),
            ({"ns_steps": 100}, r"ns_steps must be an integer in \[0, 100\), got 100"),
            ({"ns_steps": 2.0}, r"ns_steps must be an integer in \[0, 100\), got 2.0"),
            ({"ns_coefficients": (3.4, -4.7)},
             r"ns_coefficients must be three numbers \(a, b, c\), got \(3.4, -4.7\)"),
            ({"ns_coefficients": (3.4, float("nan"), 2.0)}, r"ns_coefficients\[1\] must be finite, got nan"),
            ({"adjust_lr_fn": "rms"}, r"adjust_lr_fn must be None, 'original' or 'match_rms_adamw', got 'rms'"),
            ({"ns_dtype": torch.int32}, r"ns_dtype must be a floating-point torch.dtype, got torch.int32"),
        ],
        torch_cls=torch.optim.Muon, matrices_only=True, fused=False, supports_complex=False,
        reference_preset={"ns_dtype": torch.float64},
        # On the coordinates as a matrix (2 x 5; Rosenbrock's 2 x 1): orthogonalized steps have
        # a fixed size, so, like Lion's, they settle only as the learning rate decays.
        quadratic=({"lr": optimlab.schedules.exponential_decay(0.1, 0.98)}, 360, 1e-3),
        rosenbrock=({"lr": optimlab.schedules.exponential_decay(0.05, 0.995)}, 950, 1e-2),
    ),
    Case(
        # The MLP's weights and test_reference's (2, 3) are factored, the biases and its (4,) are
        # not; test_adafactor adds 3-D and 0-D parameters and the state's size.
        "adafactor", optimlab.Adafactor, ref.adafactor,
        samples=[
            # Each option set where it changes the MLP's steps: d=1.1 and eps1=0.03 bind.
            {"lr": 0.01, "d": 1.1},
            # lr above 1/sqrt(t) from step 101 on: the relative step's 1/sqrt(t) decay; and
            # beta2_t = 1 - 1/t, the plain mean of the squared gradients so far.
            {"lr": 0.1, "beta2_decay": -1.0, "eps": (0.03, 1e-2), "weight_decay": 0.01},
            {"lr": 0.01, "eps": (0.0, 1e-3), "d": float("inf"), "maximize": True},
        ],
        errors=COMMON_ERRORS + [
            ({"eps": 1e-3}, r"eps must be a pair \(eps1, eps2\), got 0.001"),
            ({"eps": (-1e-3, 1e-3)}, r"eps\[0\] must be >= 0, got -0.001"),
            ({"eps": (None, -1e-3)}, r"eps\[1\] must be >= 0, got -0.001"),
            ({"eps": (None, float("nan"))}, r"eps\[1\] must be finite, got nan"),
            ({"beta2_decay": 0.5}, r"beta2_decay must be <= 0, got 0.5"),
            ({"d": 0.5}, r"d must be >= 1, got 0.5"),
            ({"d": float("nan")}, r"d must be finite, got nan"),
        ],
        torch_cls=torch.optim.Adafactor, fused=False, supports_complex=False,
        # Steps of a fixed size relative to the parameters' RMS: they settle as the learning
        # rate, which caps the relative step, decays.
        quadratic=({"lr": optimlab.schedules.exponential_decay(1.0, 0.99)}, 450, 1e-3),
        rosenbrock=({"lr": optimlab.schedules.exponential_decay(0.03, 0.9995)}, 6450, 1e-2),
    ),
    Case(
        # test_reference's (2, 3) is preconditioned on both sides (its 3 x 3 R has rank 2 at
        # the first step: its null space, one vector, is unique up to a sign, which the step
        # does not depend on), its (4,) is Adam's. With precondition_1d the (4,)'s L has rank 1
        # at the first step, and the basis of its 3-D null space (which the steps depend on) is
        # LAPACK's choice, NumPy's unlike torch's: test_soap checks that option on a 2-vector
        # against the formula, and everything against pytorch-optimizer's SOAP.
        "soap", optimlab.SOAP, ref.soap,
        samples=[
            {"lr": 0.01},
            {"lr": 0.01, "precondition_frequency": 3, "weight_decay": 0.05, "shampoo_beta": 0.8},
            {"lr": 0.01, "betas": (0.9, 0.99), "max_precondition_dim": 2, "eps": 1e-6},
            {"lr": 0.01, "precondition_frequency": 2, "maximize": True},
        ],
        errors=COMMON_ERRORS + [EPS_ZERO, EPS_INF, BETA1_ONE, BETA2_BIG, BETAS_SHAPE,
                                ({"shampoo_beta": 1.0}, r"shampoo_beta must be in \[0, 1\), got 1.0"),
                                ({"precondition_frequency": 0}, r"precondition_frequency must be an integer >= 1, got 0"),
                                ({"max_precondition_dim": 2.5}, r"max_precondition_dim must be an integer >= 1, got 2.5"),
                                ({"precondition_1d": 1}, r"precondition_1d must be True or False, got 1")],
        fused=False, supports_complex=False,
        # The coordinates as one preconditioned vector: a full-matrix basis for the quadratic.
        # beta2 = 0.95 remembers ~20 gradients, so the steps hover until the learning rate decays.
        quadratic=({"lr": optimlab.schedules.exponential_decay(0.05, 0.99), "weight_decay": 0.0,
                    "precondition_1d": True}, 490, 1e-3),
        rosenbrock=({"lr": 0.02, "weight_decay": 0.0, "precondition_1d": True}, 550, 1e-2),
    ),
    Case(
        # test_reference's (2, 3) is preconditioned on both sides, its (4,) is Adam's (or, with
        # precondition_1d, one side): their statistics are rank-deficient for the first steps,
        # but the inverse roots, with eps, do not depend on the null spaces' bases (unlike
        # SOAP's eigenbases), so NumPy's and torch's eigh agree on them. test_shampoo checks
        # pytorch-optimizer's ScalableShampoo where the definitions agree.
        "shampoo", optimlab.Shampoo, ref.shampoo,
        samples=[
            {"lr": 0.01},
            {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05, "precondition_frequency": 3,
             "start_preconditioning_step": 6, "precondition_1d": True},
            {"lr": 0.01, "betas": (0.95, 1.0), "grafting_beta2": 0.99, "eps": 1e-6, "grafting_eps": 1e-6,
             "max_preconditioner_dim": 2, "weight_decay": 0.01, "decoupled_weight_decay": False},
            {"lr": 0.01, "momentum": 0.5, "use_bias_correction": False, "precondition_frequency": 2,
             "maximize": True},
        ],
        errors=COMMON_ERRORS + [EPS_ZERO, EPS_INF, BETA1_ONE, BETAS_SHAPE,
                                ({"betas": (0.9, 1.5)}, r"betas\[1\] must be in \[0, 1\], got 1.5"),
                                ({"grafting_beta2": -0.1}, r"grafting_beta2 must be in \[0, 1\], got -0.1"),
                                ({"grafting_eps": 0.0}, r"grafting_eps must be > 0, got 0.0"),
                                ({"momentum": -0.5}, r"momentum must be >= 0, got -0.5"),
                                ({"nesterov": True}, r"nesterov=True requires momentum > 0 and dampening = 0"),
                                ({"precondition_frequency": 0}, r"precondition_frequency must be an integer >= 1, got 0"),
                                ({"start_preconditioning_step": 0},
                                 r"start_preconditioning_step must be an integer >= 1, got 0"),
                                ({"max_preconditioner_dim": 2.5}, r"max_preconditioner_dim must be an integer >= 1, got 2.5"),
                                ({"precondition_1d": 1}, r"precondition_1d must be True or False, got 1"),
                                ({"use_bias_correction": 1}, r"use_bias_correction must be True or False, got 1")],
        fused=False, supports_complex=False,
        # The coordinates as one preconditioned vector: L^(-1/2), full-matrix Adagrad's
        # preconditioner (an EMA) for the quadratic, with Adam's step sizes.
        quadratic=({"lr": 0.05, "precondition_1d": True}, 200, 1e-3),
        rosenbrock=({"lr": 0.01, "precondition_1d": True}, 13700, 1e-2),
    ),
    Case(
        # No NumPy formula here: the probes are torch's normal numbers from each parameter's
        # seeded generator, which NumPy cannot draw. test_kron compares the steps with
        # reference_numpy.psgd_kron handed those probes, and with pytorch-optimizer's Kron.
        "psgd_kron", optimlab.PSGDKron, None,
        samples=[
            {"lr": 0.01},
            {"lr": 0.01, "momentum": 0.8, "weight_decay": 0.05, "precond_lr": 0.3, "seed": 3},
            {"lr": 0.01, "precond_update_prob": 0.4, "memory_save_mode": "one_diag",
             "momentum_into_precond_update": False},
            {"lr": 0.01, "max_size_triangular": 4, "min_ndim_triangular": 1, "maximize": True},
        ],
        errors=COMMON_ERRORS + [
            ({"momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
            ({"precond_lr": 0.0}, r"precond_lr must be > 0, got 0.0"),
            ({"precond_init_scale": -1.0}, r"precond_init_scale must be > 0, got -1.0"),
            ({"precond_update_prob": 1.5}, r"precond_update_prob must be in \[0, 1\], got 1.5"),
            ({"max_size_triangular": 0}, r"max_size_triangular must be an integer >= 1, got 0"),
            ({"min_ndim_triangular": 1.5}, r"min_ndim_triangular must be an integer >= 1, got 1.5"),
            ({"memory_save_mode": "two_diag"},
             r"memory_save_mode must be one of None, 'one_diag', 'smart_one_diag', 'all_diag', got 'two_diag'"),
            ({"momentum_into_precond_update": 1}, r"momentum_into_precond_update must be True or False, got 1"),
            ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
        ],
        fused=False, supports_complex=False,
        # The coordinates as one vector with a triangular factor (min_ndim_triangular=1): a
        # whitening of the whole quadratic. Steps clipped to RMS 1.1: they settle as lr decays.
        quadratic=({"lr": optimlab.schedules.exponential_decay(0.1, 0.98), "min_ndim_triangular": 1}, 190, 1e-3),
        rosenbrock=({"lr": optimlab.schedules.exponential_decay(0.05, 0.998), "min_ndim_triangular": 1}, 2100, 1e-2),
    ),
    Case(
        # eps=1e-4 switches to SGD at step 2-10 on test_reference's noisy quadratic (the
        # switch is tested in test_combinators); the default stays Adam there.
        "swats", optimlab.SWATS, ref.swats,
        samples=[{"lr": 0.01}, {"lr": 0.05, "eps": 1e-4, "weight_decay": 0.01}, {"lr": 0.01, "maximize": True}],
        errors=COMMON_ERRORS + [EPS_ZERO, EPS_INF, BETA1_ONE, BETA2_BIG, BETAS_SHAPE],
        fused=False, supports_complex=False,
        # Both switch to SGD on the way (the quadratic at step 143, Rosenbrock at 6802).
        quadratic=({"lr": 0.02}, 2050, 1e-3),
        rosenbrock=({"lr": 0.3}, 13400, 1e-3),
    ),
    Case(
        # No torch.optim twin: tests/test_trust_ratio.py compares it with pytorch-optimizer's.
        "lamb", optimlab.LAMB, ref.lamb,
        samples=[{"lr": 0.01}, {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-8, "weight_decay": 0.1},
                 {"lr": 0.01, "maximize": True}],
        errors=COMMON_ERRORS + [EPS_ZERO, EPS_NEG, EPS_INF, BETA1_ONE, BETA2_BIG, BETAS_SHAPE],
        supports_complex=False,
        # Each step moves x by lr * |x| (the trust ratio): it settles as the learning rate decays.
        quadratic=({"lr": optimlab.schedules.exponential_decay(0.05, 0.99)}, 650, 1e-3),
        rosenbrock=({"lr": optimlab.schedules.exponential_decay(0.05, 0.998)}, 2100, 1e-2),
    ),
    Case(
        "lars", optimlab.LARS, ref.lars,
        samples=[
            {"lr": 0.7},
            {"lr": 0.7, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01, "trust_coefficient": 0.01},
            {"lr": 0.7, "nesterov": True, "weight_decay": 0.02},
            {"lr": 0.7, "momentum": 0.0, "maximize": True},
        ],
        errors=SGD_ERRORS + [({"trust_coefficient": 0.0}, r"trust_coefficient must be > 0, got 0.0")],
        supports_complex=False,
        # Normalized steps of lr * 1e-3 * |x|: they settle as the learning rate decays.
        quadratic=({"lr": optimlab.schedules.exponential_decay(30.0, 0.99)}, 500, 1e-3),
        rosenbrock=({"lr": optimlab.schedules.exponential_decay(10.0, 0.999)}, 1900, 1e-2),
    ),
    Case(
        # Compared with pytorch-optimizer's cautious AdEMAMix at alpha=0 (AdamW) in test_cautious.py.
        "cautious_adamw", optimlab.CautiousAdamW, ref.cautious_adamw,
        samples=[{"lr": 0.01}, {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1},
                 {"lr": 0.01, "maximize": True}],
        errors=ADAM_ERRORS,
        supports_complex=False,
        quadratic=({"lr": 0.05, "weight_decay": 0.0}, 600, 1e-3),
        rosenbrock=({"lr": 0.01, "weight_decay": 0.0}, 6100, 1e-2),
    ),
    Case(
        "cautious_lion", optimlab.CautiousLion, ref.cautious_lion,
        samples=[{"lr": 0.01}, {"lr": 0.01, "betas": (0.8, 0.95), "weight_decay": 0.1},
                 {"lr": 0.01, "maximize": True}],
        errors=COMMON_ERRORS + [BETA1_ONE, BETA2_NEG, BETA2_BIG, BETAS_SHAPE],
        supports_complex=False,
        # Lion's unit sign steps: they settle as the learning rate decays.
        quadratic=({"lr": optimlab.schedules.exponential_decay(0.05, 0.99)}, 850, 1e-3),
        rosenbrock=({"lr": optimlab.schedules.exponential_decay(0.02, 0.999)}, 1500, 1e-2),
    ),
    Case(
        # test_schedule_free compares both with the schedulefree package through train()/eval().
        "schedulefree_sgd", optimlab.ScheduleFreeSGD, ref.schedule_free_sgd,
        samples=[{"lr": 0.05},
                 {"lr": 0.1, "momentum": 0.8, "weight_decay": 0.01, "warmup_steps": 20, "r": 1.0,
                  "weight_lr_power": 1.0}],
        errors=LR_WD_ERRORS + [({"momentum": 1.0}, r"momentum must be in \(0, 1\), got 1.0"),
                               ({"momentum": 0.0}, r"momentum must be in \(0, 1\), got 0.0"),
                               ({"warmup_steps": -1}, r"warmup_steps must be >= 0, got -1")],
        train_eval=True, supports_complex=False,
        # Distances at the average x. Rosenbrock's early iterates are far off: weighting later
        # ones (r=1) and a warm-up make the average settle.
        quadratic=({"lr": 0.015}, 3850, 1e-3),
        rosenbrock=({"lr": 3e-3, "r": 1.0, "warmup_steps": 100}, 13800, 1e-2),
    ),
    Case(
        "schedulefree_adamw", optimlab.ScheduleFreeAdamW, ref.schedule_free_adamw,
        samples=[{"lr": 0.01},
                 {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05, "warmup_steps": 30, "r": 0.5}],
        errors=LR_WD_ERRORS + ADAM_HYPERPARAMETER_ERRORS,
        train_eval=True, supports_complex=False,
        quadratic=({"lr": 0.05}, 2900, 1e-3),
        rosenbrock=({"lr": 0.02}, 9900, 1e-2),
    ),
    Case(
        # d is estimated over the param group (prodigyopt: over all groups, the same with one);
        # test_parameter_free compares with prodigyopt.
        "prodigy", optimlab.Prodigy, ref.prodigy,
        samples=[
            {},
            {"betas": (0.8, 0.99), "beta3": 0.95, "weight_decay": 0.01, "use_bias_correction": True, "d_coef": 0.5},
            {"weight_decay": 0.05, "decouple": False, "safeguard_warmup": True, "growth_rate": 1.05, "slice_p": 3},
            {"betas": (0.0, 0.999), "d0": 1e-4, "lr": 0.5},
        ],
        errors=LR_WD_ERRORS + ADAM_HYPERPARAMETER_ERRORS + [
            ({"d0": 0.0}, r"d0 must be > 0, got 0.0"),
            ({"beta3": 1.0}, r"beta3 must be in \[0, 1\), got 1.0"),
            ({"slice_p": 0}, r"slice_p must be an integer >= 1, got 0"),
            ({"growth_rate": 0.5}, r"growth_rate must be a number >= 1 \(inf: no cap\), got 0.5"),
        ],
        group_reference=True, fused=lambda sample: sample.get("slice_p", 1) == 1, supports_complex=False,
        # At its defaults on the quadratic; on Rosenbrock its steps, like Adam's, hover at a
        # constant lr, so the multiplier decays.
        quadratic=({}, 210, 1e-3),
        rosenbrock=({"lr": optimlab.schedules.exponential_decay(1.0, 0.9995)}, 5600, 1e-2),
    ),
    Case(
        "dadapt_adam", optimlab.DAdaptAdam, ref.dadapt_adam,
        samples=[
            {},
            {"betas": (0.8, 0.99), "weight_decay": 0.01, "use_bias_correction": True, "growth_rate": 1.1},
            {"weight_decay": 0.05, "decouple": True, "d0": 1e-4, "lr": 0.5, "eps": 1e-6},
        ],
        errors=LR_WD_ERRORS + ADAM_HYPERPARAMETER_ERRORS + [
            ({"d0": -1.0}, r"d0 must be > 0, got -1.0"),
            ({"growth_rate": 0.5}, r"growth_rate must be a number >= 1 \(inf: no cap\), got 0.5"),
        ],
        group_reference=True, supports_complex=False,
        # At lr=1 both hover at the d it estimates (7e-3 from the quadratic's minimizer at 20000 steps).
        quadratic=({"lr": optimlab.schedules.exponential_decay(1.0, 0.999)}, 210, 1e-3),
        rosenbrock=({"lr": optimlab.schedules.exponential_decay(1.0, 0.999)}, 490, 1e-2),
    ),
]

CASES_BY_NAME = {case.name: case for case in CASES}
TORCH_CASES = [case for case in CASES if case.torch_cls is not None]
ALL_SAMPLES = [(case, sample) for case in CASES for sample in case.samples]
SAMPLES = [(case, sample) for case, sample in ALL_SAMPLES if case.fuses(sample)]
TORCH_SAMPLES = [(case, sample) for case, sample in ALL_SAMPLES if case.torch_cls is not None]


def ids(value: Any) -> str:
    if isinstance(value, Case):
        return value.name
    if isinstance(value, dict):
        return sample_id(value)
    return str(value)
