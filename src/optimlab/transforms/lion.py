"""Lion: the sign of an interpolated momentum."""

from __future__ import annotations

from .. import checks
from ..fused.spec import Elementwise
from ..transform import Transform


class scale_by_lion(Transform):
    r"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"):

    .. math:: u \leftarrow \operatorname{sign}\big(\beta_1 m_{t-1} + (1-\beta_1) g_t\big),
              \quad m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t.

    Every coordinate moves by exactly the learning rate, so Lion's ``lr`` is 3-10x smaller
    than AdamW's and its decoupled ``weight_decay`` 3-10x larger for the same effect
    (the paper's advice). One state buffer (``exp_avg``), half of Adam's. Defaults
    (the paper's and lion-pytorch's): ``betas=(0.9, 0.99)``. ``sign`` is torch's
    (``sign(0) = 0``, ``sign(nan) = 0``).
    """

    checks = {"betas": checks.betas}
    state_keys = ("exp_avg",)

    def __init__(self, betas=(0.9, 0.99)) -> None:
        super().__init__(betas=betas)

    def init(self, params, hyperparams):
        return {"exp_avg": params.zeros_like()}

    def coefficients(self, hyperparams, step, state):
        beta1, beta2 = hyperparams["betas"]
        return {"one_minus_beta1": 1 - beta1, "one_minus_beta2": 1 - beta2}

    def update(self, updates, state, params, hyperparams, step):
        k = self.coefficients(hyperparams, step, state)
        exp_avg = state["exp_avg"]
        direction = exp_avg.lerp(updates, k["one_minus_beta1"]).sign_()
        exp_avg.lerp_(updates, k["one_minus_beta2"])
        return direction

    def elementwise(self, hyperparams):
        code = """
        T c = lerp($exp_avg, u, $one_minus_beta1);
        $exp_avg = lerp($exp_avg, u, $one_minus_beta2);
        u = (T)((c > 0) - (c < 0));
        """
        return Elementwise(code, ("exp_avg",))
