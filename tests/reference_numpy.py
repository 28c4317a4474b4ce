"""Independent float64 NumPy implementations of each optimizer, from the papers' formulas
(as torch.optim's documentation writes them). They use no optimlab or torch code.

Each reference steps one parameter: ``x = step(x, g, state, t, hp)`` with ``g`` the raw
gradient of the objective at ``x``, ``state`` a dict the function fills on its first call,
``t`` the 1-based step and ``hp`` every hyperparameter (constructor defaults, the name's
preset and the sample). All but Muon, SOAP, Shampoo and PSGD-Kron (matrix operations), Adafactor (row and
column means, RMS norms) and MARS (the norm of its corrected gradient) are elementwise.
Prodigy and D-Adaptation, whose step size is a sum over the param group, step the group's
parameters together: ``xs = step(xs, gs, state, t, hp)``. Schedule-Free returns the
train-mode point y and keeps the point to evaluate in ``state["x"]``.
"""

from __future__ import annotations

import numpy as np


def _grad(x, g, hp, coupled=True):
    """maximize, then L2 weight decay (the coupled form)."""
    g = -g if hp.get("maximize", False) else g
    if coupled and hp.get("weight_decay", 0):
        g = g + hp["weight_decay"] * x
    return g


def sgd(x, g, state, t, hp):
    """SGD with heavy-ball/Nesterov momentum and dampening (Sutskever et al. 2013, torch form):
    b_1 = g_1, b_t = mu b_{t-1} + (1 - tau) g_t; step g + mu b (Nesterov) or b."""
    g = _grad(x, g, hp)
    mu = hp["momentum"]
    if mu != 0:
        if t == 1:
            state["b"] = g.copy()
        else:
            state["b"] = mu * state["b"] + (1 - hp["dampening"]) * g
        g = g + mu * state["b"] if hp["nesterov"] else state["b"]
    return x - hp["lr"] * g


def ema_momentum(x, g, state, t, hp):
    """v_0 = 0, v_t = beta v_{t-1} + (1 - beta) g_t, x -= lr v_t."""
    g = _grad(x, g, hp)
    beta = hp["momentum"]
    state["v"] = beta * state.get("v", np.zeros_like(x)) + (1 - beta) * g
    return x - hp["lr"] * state["v"]


def adagrad(x, g, state, t, hp):
    """Duchi et al. 2011: G_t = G_{t-1} + g^2 (G_0 = initial accumulator);
    x -= lr / (1 + (t-1) lr_decay) * g / (sqrt(G_t) + eps)."""
    g = _grad(x, g, hp)
    if t == 1:
        state["G"] = np.full_like(x, hp["initial_accumulator_value"])
    state["G"] = state["G"] + g * g
    lr_t = hp["lr"] / (1 + (t - 1) * hp["lr_decay"])
    return x - lr_t * g / (np.sqrt(state["G"]) + hp["eps"])


def adadelta(x, g, state, t, hp):
    """Zeiler 2012: E[g^2] and E[dx^2] moving averages; dx = sqrt(E[dx^2]+eps)/sqrt(E[g^2]+eps) g."""
    g = _grad(x, g, hp)
    rho, eps = hp["rho"], hp["eps"]
    Eg = rho * state.get("Eg", np.zeros_like(x)) + (1 - rho) * g * g
    Edx = state.get("Edx", np.zeros_like(x))
    dx = np.sqrt(Edx + eps) / np.sqrt(Eg + eps) * g
    state["Eg"], state["Edx"] = Eg, rho * Edx + (1 - rho) * dx * dx
    return x - hp["lr"] * dx


def rmsprop(x, g, state, t, hp):
    """Hinton 2012 (centered: Graves 2013): v = a v + (1-a) g^2, [gbar = a gbar + (1-a) g,
    v~ = v - gbar^2]; b = mu b + g / (sqrt(v~) + eps), x -= lr b (b = the step if mu = 0)."""
    g = _grad(x, g, hp)
    a = hp["alpha"]
    state["v"] = a * state.get("v", np.zeros_like(x)) + (1 - a) * g * g
    v = state["v"]
    if hp["centered"]:
        state["gbar"] = a * state.get("gbar", np.zeros_like(x)) + (1 - a) * g
        v = v - state["gbar"] ** 2
    step = g / (np.sqrt(v) + hp["eps"])
    if hp["momentum"] > 0:
        state["b"] = hp["momentum"] * state.get("b", np.zeros_like(x)) + step
        step = state["b"]
    return x - hp["lr"] * step


def _decoupled(x, hp, default=False):
    if hp.get("decoupled_weight_decay", default) and hp.get("weight_decay", 0):
        return x * (1 - hp["lr"] * hp["weight_decay"]), True
    return x, hp.get("decoupled_weight_decay", default)


def _moments(g, state, hp):
    b1, b2 = hp["betas"]
    state["m"] = b1 * state.get("m", np.zeros_like(g)) + (1 - b1) * g
    state["v"] = b2 * state.get("v", np.zeros_like(g)) + (1 - b2) * g * g
    return state["m"], state["v"]


def _adam(x, g, state, t, hp, decoupled_default):
    """Kingma & Ba 2015 (AMSGrad: Reddi et al. 2018; decoupled decay: Loshchilov & Hutter 2019):
    m_hat = m / (1 - b1^t), v_hat = [max_s v_s | v_t] / (1 - b2^t),
    x -= lr m_hat / (sqrt(v_hat) + eps)."""
    x, decoupled = _decoupled(x, hp, decoupled_default)
    g = _grad(x, g, hp, coupled=not decoupled)
    b1, b2 = hp["betas"]
    m, v = _moments(g, state, hp)
    if hp["amsgrad"]:
        state["vmax"] = np.maximum(state.get("vmax", np.zeros_like(x)), v)
        v = state["vmax"]
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    return x - hp["lr"] * m_hat / (np.sqrt(v_hat) + hp["eps"])


def adam(x, g, state, t, hp):
    return _adam(x, g, state, t, hp, decoupled_default=False)


def adamw(x, g, state, t, hp):
    return _adam(x, g, state, t, hp, decoupled_default=True)


def adamax(x, g, state, t, hp):
    """Kingma & Ba 2015 sec. 7.1: u_t = max(b2 u_{t-1}, |g| + eps), x -= lr/(1-b1^t) m / u."""
    g = _grad(x, g, hp)
    b1, b2 = hp["betas"]
    state["m"] = b1 * state.get("m", np.zeros_like(x)) + (1 - b1) * g
    state["u"] = np.maximum(b2 * state.get("u", np.zeros_like(x)), np.abs(g) + hp["eps"])
    return x - hp["lr"] / (1 - b1**t) * state["m"] / state["u"]


def nadam(x, g, state, t, hp):
    """Dozat 2016 with mu_t = b1 (1 - 0.5 * 0.96^(t psi)):
    x -= lr [(1 - mu_t)/(1 - prod_{i<=t} mu_i) g + mu_{t+1}/(1 - prod_{i<=t+1} mu_i) m]
          / (sqrt(v / (1 - b2^t)) + eps)."""
    x, decoupled = _decoupled(x, hp)
    g = _grad(x, g, hp, coupled=not decoupled)
    b1, b2 = hp["betas"]
    psi = hp["momentum_decay"]
    mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
    state["prod"] = state.get("prod", 1.0) * mu
    m, v = _moments(g, state, hp)
    denom = np.sqrt(v / (1 - b2**t)) + hp["eps"]
    direction = (1 - mu) / (1 - state["prod"]) * g + mu_next / (1 - state["prod"] * mu_next) * m
    return x - hp["lr"] * direction / denom


def radam(x, g, state, t, hp):
    """Liu et al. 2020: rho_inf = 2/(1-b2) - 1, rho_t = rho_inf - 2 t b2^t / (1 - b2^t);
    rectified adaptive step when rho_t > 5, else the bias-corrected momentum step."""
    x, decoupled = _decoupled(x, hp)
    g = _grad(x, g, hp, coupled=not decoupled)
    b1, b2 = hp["betas"]
    m, v = _moments(g, state, hp)
    m_hat = m / (1 - b1**t)
    rho_inf = 2 / (1 - b2) - 1
    rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
    if rho_t > 5:
        r = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        adaptive = np.sqrt(1 - b2**t) / (np.sqrt(v) + hp["eps"])
        return x - hp["lr"] * m_hat * r * adaptive
    return x - hp["lr"] * m_hat


def adabelief(x, g, state, t, hp):
    """Zhuang et al. 2020, Algorithm 2: m = b1 m + (1-b1) g, s = b2 s + (1-b2)(g - m)^2 + eps,
    x -= lr (m / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + eps); decoupled weight decay by default."""
    x, decoupled = _decoupled(x, hp, default=True)
    g = _grad(x, g, hp, coupled=not decoupled)
    b1, b2 = hp["betas"]
    state["m"] = b1 * state.get("m", np.zeros_like(x)) + (1 - b1) * g
    state["s"] = b2 * state.get("s", np.zeros_like(x)) + (1 - b2) * (g - state["m"]) ** 2 + hp["eps"]
    m_hat, s_hat = state["m"] / (1 - b1**t), state["s"] / (1 - b2**t)
    return x - hp["lr"] * m_hat / (np.sqrt(s_hat) + hp["eps"])


def adopt(x, g, state, t, hp):
    """Taniguchi et al. 2024, Algorithm 2 (clipped), the paper's step s = t - 1: v_0 = g_0^2;
    m_s = b1 m + (1 - b1) clip(g_s / max(sqrt(v_{s-1}), eps), s^(1/4)), x -= lr m_s,
    v_s = b2 v + (1 - b2) g_s^2; L2 or decoupled weight decay (every step)."""
    x, decoupled = _decoupled(x, hp)
    g = _grad(x, g, hp, coupled=not decoupled)
    b1, b2 = hp["betas"]
    if t == 1:
        state["m"], state["v"] = np.zeros_like(x), g * g
        return x
    normed = g / np.maximum(np.sqrt(state["v"]), hp["eps"])
    if hp["clip_lambda"] is not None:
        bound = hp["clip_lambda"](t - 1)
        normed = np.clip(normed, -bound, bound)
    state["m"] = b1 * state["m"] + (1 - b1) * normed
    state["v"] = b2 * state["v"] + (1 - b2) * g * g
    return x - hp["lr"] * state["m"]


def ademamix(x, g, state, t, hp):
    """Pagliardini et al. 2024, Algorithm 1: m1 = EMA_b1(g), m2 = EMA_b3(t)(g), v = EMA_b2(g^2),
    x -= lr (m1 / (1 - b1^t) + alpha(t) m2) / (sqrt(v / (1 - b2^t)) + eps) (+ decoupled decay);
    with T = t_alpha_beta3: alpha(t) = min(t alpha / T, alpha),
    b3(t) = min(exp(ln b1 ln b3 / ((1 - t/T) ln b3 + (t/T) ln b1)), b3)."""
    x, decoupled = _decoupled(x, hp, default=True)
    g = _grad(x, g, hp, coupled=not decoupled)
    b1, b2, b3 = hp["betas"]
    alpha, warmup = hp["alpha"], hp["t_alpha_beta3"]
    if warmup is not None:
        alpha = min(t * alpha / warmup, alpha)
        b3 = min(np.exp(np.log(b1) * np.log(b3) / ((1 - t / warmup) * np.log(b3) + t / warmup * np.log(b1))), b3)
    state["m1"] = b1 * state.get("m1", np.zeros_like(x)) + (1 - b1) * g
    state["m2"] = b3 * state.get("m2", np.zeros_like(x)) + (1 - b3) * g
    state["v"] = b2 * state.get("v", np.zeros_like(x)) + (1 - b2) * g * g
    denom = np.sqrt(state["v"] / (1 - b2**t)) + hp["eps"]
    return x - hp["lr"] * (state["m1"] / (1 - b1**t) + alpha * state["m2"]) / denom


def mars(x, g, state, t, hp):
    """Yuan et al. 2024, MARS-AdamW (approximate: g_{t-1} for grad f(x_{t-1}, xi_t), g_0 = 0):
    c = g + gamma b1 / (1 - b1) (g - g_{t-1}), c /= ||c|| if ||c|| > 1 (the tensor x),
    m = EMA_b1(c), v = EMA_b2(c^2), x -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps),
    decoupled weight decay."""
    x, _ = _decoupled(x, {**hp, "decoupled_weight_decay": True})
    g = -g if hp["maximize"] else g
    b1, b2 = hp["betas"]
    c = g + hp["gamma"] * b1 / (1 - b1) * (g - state.get("g", np.zeros_like(x)))
    norm = np.linalg.norm(c)
    if norm > 1:
        c = c / norm
    state["g"] = g
    state["m"] = b1 * state.get("m", np.zeros_like(x)) + (1 - b1) * c
    state["v"] = b2 * state.get("v", np.zeros_like(x)) + (1 - b2) * c * c
    return x - hp["lr"] * (state["m"] / (1 - b1**t)) / (np.sqrt(state["v"] / (1 - b2**t)) + hp["eps"])


def lion(x, g, state, t, hp):
    """Chen et al. 2023, Algorithm 2: c = b1 m + (1 - b1) g, x -= lr (sign(c) + wd x),
    m = b2 m + (1 - b2) g."""
    g = -g if hp["maximize"] else g
    b1, b2 = hp["betas"]
    m = state.get("m", np.zeros_like(x))
    c = b1 * m + (1 - b1) * g
    state["m"] = b2 * m + (1 - b2) * g
    return x - hp["lr"] * (np.sign(c) + hp["weight_decay"] * x)


def _newton_schulz(u, hp):
    """k steps of X <- a X + (b A + c A^2) X, A = X X^T, from X = U / max(|U|_F, eps),
    on the wide orientation of U (Jordan et al. 2024)."""
    a, b, c = hp["ns_coefficients"]
    tall = u.shape[0] > u.shape[1]
    x = u.T if tall else u
    x = x / max(np.linalg.norm(x), hp["eps"])
    for _ in range(hp["ns_steps"]):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def muon(x, g, state, t, hp):
    """Muon (Jordan et al. 2024), as torch.optim.Muon's documentation writes it, for one
    matrix x (m x n): B_t = mu B_{t-1} + g, U = g + mu B_t (Nesterov) or B_t,
    x <- x (1 - lr wd) - lr s NS(U), s = sqrt(max(1, m/n)) ("original") or
    0.2 sqrt(max(m, n)) ("match_rms_adamw"). (torch keeps B as an EMA, (1 - mu) times this
    sum: the same direction, which NS's normalization makes the same step.)"""
    g = _grad(x, g, hp, coupled=False)
    mu = hp["momentum"]
    state["B"] = mu * state.get("B", np.zeros_like(x)) + g
    u = g + mu * state["B"] if hp["nesterov"] else state["B"]
    m, n = x.shape
    scale = 0.2 * np.sqrt(max(m, n)) if hp["adjust_lr_fn"] == "match_rms_adamw" else np.sqrt(max(1, m / n))
    return x * (1 - hp["lr"] * hp["weight_decay"]) - hp["lr"] * scale * _newton_schulz(u, hp)


def soap(x, g, state, t, hp):
    """SOAP (Vyas et al. 2024, Algorithm 3) for one parameter, with AdamW's decoupled decay:
    L, R = EMAs (shampoo_beta, default beta2) of G G^T, G^T G; at t = 1 their eigenbases
    (decreasing eigenvalues) and no step but the decay; then with k = t - 1, M = EMA_beta1(G),
    V = EMA_beta2((Q_L^T G Q_R)^2), x <- x (1 - lr wd) - lr sqrt(1-beta2^k)/(1-beta1^k)
    Q_L [Q_L^T M Q_R / (sqrt(V) + eps)] Q_R^T; after the step L, R take G, and every
    precondition_frequency steps Q <- qr(S Q) with Q's columns sorted by diag(Q^T S Q)
    (decreasing) and V's rows/columns permuted alike. Sides longer than
    max_precondition_dim are the identity; a vector is a column (one side, if precondition_1d)."""
    g = _grad(x, g, hp, coupled=False)
    shape = x.shape
    G = g.reshape(-1, 1) if x.ndim <= 1 else g.reshape(shape[0], -1)
    beta1, beta2 = hp["betas"]
    weight = 1 - (beta2 if hp["shampoo_beta"] is None else hp["shampoo_beta"])
    if t == 1:
        rows, columns = G.shape
        sides = [rows if x.ndim >= 2 or hp["precondition_1d"] else None, columns if x.ndim >= 2 else None]
        sides = [n if n is not None and n <= hp["max_precondition_dim"] else None for n in sides]
        state["S"] = [None if n is None else np.zeros((n, n)) for n in sides]
        state["M"], state["V"] = np.zeros_like(G), np.zeros_like(G)

    def gather():
        for i, outer in enumerate((G @ G.T, G.T @ G)):
            if state["S"][i] is not None:
                state["S"][i] = state["S"][i] + weight * (outer - state["S"][i])

    def project(a, back=False):
        left, right = state["Q"]
        if left is not None:
            a = (left if back else left.T) @ a
        if right is not None:
            a = a @ (right.T if back else right)
        return a

    if t == 1:
        gather()
        state["Q"] = [None if s is None else np.linalg.eigh(s)[1][:, ::-1] for s in state["S"]]
        return x * (1 - hp["lr"] * hp["weight_decay"])
    k = t - 1
    state["M"] = beta1 * state["M"] + (1 - beta1) * G
    state["V"] = beta2 * state["V"] + (1 - beta2) * project(G) ** 2
    direction = project(project(state["M"]) / (np.sqrt(state["V"]) + hp["eps"]), back=True)
    step_size = hp["lr"] * np.sqrt(1 - beta2**k) / (1 - beta1**k)
    x = x * (1 - hp["lr"] * hp["weight_decay"]) - step_size * direction.reshape(shape)
    gather()
    if k % hp["precondition_frequency"] == 0:
        for i, (s, q) in enumerate(zip(state["S"], state["Q"])):
            if s is not None:
                order = np.argsort(-np.diag(q.T @ s @ q), kind="stable")
                state["V"] = np.take(state["V"], order, axis=i)
                state["Q"][i] = np.linalg.qr((s @ q)[:, order])[0]
    return x


def shampoo(x, g, state, t, hp):
    """Shampoo with Adam grafting (Gupta et al. 2018; Anil et al. 2020) as Meta's Distributed
    Shampoo defines it (Shi et al. 2023), for one parameter: g (+ wd x for L2);
    L, R = EMAs (beta2; sums when beta2 = 1) of G G^T, G^T G; M = EMA_beta1(G),
    V = EMA_grafting_beta2(G^2); M^, V^, L^, R^ bias-corrected (use_bias_correction);
    A = M^ / (sqrt(V^) + grafting_eps); at steps t >= s = start_preconditioning_step
    (default precondition_frequency) with (t - s) % precondition_frequency == 0,
    L~ = Q (lambda - min(lambda_min, 0) + eps)^(-1/4) Q^T of L^ (R~ alike; a vector's one side,
    with precondition_1d: exponent -1/2); d = A before s, else D ||A|| / (||D|| + 1e-16)
    with D = L~ M^ R~; no preconditioned side: d = A. Then d + wd x (decoupled), heavy-ball
    momentum b = mu b + d (d + mu b with Nesterov), x <- x - lr d. Sides longer than
    max_preconditioner_dim are the identity; a vector is a column."""
    g = -g if hp["maximize"] else g
    if hp["weight_decay"] and not hp["decoupled_weight_decay"]:
        g = g + hp["weight_decay"] * x
    shape = x.shape
    G = g.reshape(-1, 1) if x.ndim <= 1 else g.reshape(shape[0], -1)
    beta1, beta2 = hp["betas"]
    graft_beta2 = beta2 if hp["grafting_beta2"] is None else hp["grafting_beta2"]

    def correction(beta):
        return 1 - beta**t if hp["use_bias_correction"] and beta < 1 else 1.0

    def accumulate(old, new, beta):
        return old + new if beta == 1 else beta * old + (1 - beta) * new

    if t == 1:
        rows, columns = G.shape
        sides = [rows if x.ndim >= 2 or hp["precondition_1d"] else None, columns if x.ndim >= 2 else None]
        sides = [n if n is not None and n <= hp["max_preconditioner_dim"] else None for n in sides]
        state["S"] = [None if n is None else np.zeros((n, n)) for n in sides]
        state["root"] = [None, None]
        state["M"], state["V"], state["b"] = np.zeros_like(G), np.zeros_like(G), np.zeros_like(G)
    state["M"] = beta1 * state["M"] + (1 - beta1) * G
    state["V"] = accumulate(state["V"], G * G, graft_beta2)
    M = state["M"] / correction(beta1)
    adam = M / (np.sqrt(state["V"] / correction(graft_beta2)) + hp["grafting_eps"])
    start = hp["start_preconditioning_step"] or hp["precondition_frequency"]
    exponent = -0.5 if x.ndim <= 1 else -0.25
    for i, outer in enumerate((G @ G.T, G.T @ G)):
        if state["S"][i] is None:
            continue
        state["S"][i] = accumulate(state["S"][i], outer, beta2)
        if t >= start and (t - start) % hp["precondition_frequency"] == 0:
            values, vectors = np.linalg.eigh(state["S"][i] / correction(beta2))
            values = values - min(values.min(), 0.0) + hp["eps"]
            state["root"][i] = vectors @ np.diag(values**exponent) @ vectors.T
    d = adam
    if t >= start and any(s is not None for s in state["S"]):
        left, right = state["root"]
        D = M if left is None else left @ M
        D = D if right is None else D @ right
        d = D * np.linalg.norm(adam) / (np.linalg.norm(D) + 1e-16)
    if hp["weight_decay"] and hp["decoupled_weight_decay"]:
        d = d + hp["weight_decay"] * x.reshape(G.shape)
    if hp["momentum"]:
        state["b"] = hp["momentum"] * state["b"] + d
        d = d + hp["momentum"] * state["b"] if hp["nesterov"] else state["b"]
    return x - hp["lr"] * d.reshape(shape)
def _update_probability_sum(t, p):
    """sum_{k<=t} p_k: p, or the schedule 1 for 500 steps, then e^{-0.001 (k - 501)} down to 0.03."""
    if p is not None:
        return t * p
    return sum(min(1.0, max(0.03, np.exp(-1e-3 * (k - 1 - 500)))) for k in range(1, t + 1))


def _kron_along(a, axis, m):
    """The matrix m applied to axis ``axis`` of a (a vector m: elementwise along it)."""
    if m.ndim == 1:
        return a * m.reshape([-1 if d == axis else 1 for d in range(a.ndim)])
    return np.moveaxis(np.tensordot(m, a, axes=([1], [axis])), 0, axis)


def psgd_kron(x, g, state, t, hp, v):
    """PSGD-Kron (Li 2015/2018, kron_torch) for one parameter, with the probe v ~ N(0, I) of
    the step given: m = EMA_momentum(g), h = m / (1 - momentum^t); when floor(sum_{k<=t} p_k)
    grows, with A = Q h' (h' = h, or g without momentum_into_precond_update) and B = Q^-T v
    along every side, each factor Q_i <- Q_i - precond_lr triu(T1 - T2) Q_i / (|T1 + T2| + tiny),
    T1 = A_(i) A_(i)^T, T2 = B_(i) B_(i)^T (mode-i unfoldings; a diagonal factor takes their
    diagonals and the max norm, a triangular one the power-iteration lower bound of the spectral
    norm from the largest row); u = Q^T Q h clipped to RMS 1.1 (+1e-6);
    x <- x - lr (u + wd x). Factors start at precond_init_scale^(1/d) I."""
    g = _grad(x, g, hp, coupled=False)
    shape = x.shape or (1,)
    if t == 1:
        mode = hp["memory_save_mode"]
        longest = max(i for i, n in enumerate(shape) if n == max(shape))
        diagonal = [mode == "all_diag" or (i == longest and (
            mode == "one_diag" or (mode == "smart_one_diag" and len(shape) > 1 and sorted(shape)[-2] < max(shape))))
            for i in range(len(shape))]
        scale = hp["precond_init_scale"] ** (1 / len(shape))
        state["Q"] = [scale * (np.eye(n) if 1 < n <= hp["max_size_triangular"] and x.ndim >= hp["min_ndim_triangular"]
                               and not diagonal[i] else np.ones(n)) for i, n in enumerate(shape)]
        state["m"] = np.zeros(shape)
    beta = hp["momentum"]
    g = g.reshape(shape)
    state["m"] = beta * state["m"] + (1 - beta) * g
    h = state["m"] / (1 - beta**t)
    p = hp["precond_update_prob"]
    tiny = 2.0**-126
    if np.floor(_update_probability_sum(t, p)) > np.floor(_update_probability_sum(t - 1, p)):
        a, b = h if hp["momentum_into_precond_update"] else g, v.reshape(shape)
        for i, q in enumerate(state["Q"]):
            a = _kron_along(a, i, q)
            b = _kron_along(b, i, 1 / q if q.ndim == 1 else np.linalg.inv(q).T)
        new = []
        for i, q in enumerate(state["Q"]):
            a_i, b_i = np.moveaxis(a, i, 0).reshape(shape[i], -1), np.moveaxis(b, i, 0).reshape(shape[i], -1)
            t1, t2 = a_i @ a_i.T, b_i @ b_i.T
            if q.ndim == 1:
                s = np.diag(t1 + t2)
                new.append(q - hp["precond_lr"] * np.diag(t1 - t2) * q / (np.max(np.abs(s)) + tiny))
            else:
                s = t1 + t2
                top = np.max(np.abs(s))
                s = s / top
                row = s[np.argmax(np.sum(s * s, axis=1))]
                y = s @ row
                bound = top * np.linalg.norm(s.T @ (y / np.linalg.norm(y)))
                new.append(q - hp["precond_lr"] * np.triu(t1 - t2) @ q / (bound + tiny))
        state["Q"] = new
    u = h
    for i, q in enumerate(state["Q"]):
        u = _kron_along(u, i, q * q if q.ndim == 1 else q.T @ q)
    u = u * min(1.0, 1.1 / (np.sqrt(np.mean(u * u)) + 1e-6))
    return x - hp["lr"] * (u.reshape(x.shape) + hp["weight_decay"] * x)


def _rms(a):
    return np.sqrt(np.mean(a * a))


def adafactor(x, g, state, t, hp):
    """Shazeer & Stern 2018 as torch.optim.Adafactor's documentation writes it, with
    beta2_t = 1 - t^tau, rho_t = min(lr, 1/sqrt(t)), alpha_t = max(eps2, RMS(x)) rho_t.
    x of 2+ dims, factored over its last two: R = beta2_t R + (1 - beta2_t) mean_cols g^2,
    C = beta2_t C + (1 - beta2_t) mean_rows g^2, V = R C / max(mean_rows R, eps1) (outer
    product); else V = beta2_t V + (1 - beta2_t) g^2. U = g / max(sqrt(V), eps1),
    x <- x (1 - lr wd) - alpha_t U / max(1, RMS(U) / d). eps1 None: the dtype's epsilon."""
    g = -g if hp["maximize"] else g
    eps1, eps2 = hp["eps"]
    eps1 = np.finfo(x.dtype).eps if eps1 is None else eps1
    w = t ** hp["beta2_decay"]  # 1 - beta2_t
    if x.ndim >= 2:
        state["R"] = (1 - w) * state.get("R", 0.0) + w * np.mean(g * g, axis=-1, keepdims=True)
        state["C"] = (1 - w) * state.get("C", 0.0) + w * np.mean(g * g, axis=-2, keepdims=True)
        v = state["R"] * state["C"] / np.maximum(np.mean(state["R"], axis=-2, keepdims=True), eps1)
    else:
        state["V"] = (1 - w) * state.get("V", 0.0) + w * g * g
        v = state["V"]
    u = g / np.maximum(np.sqrt(v), eps1)
    u = u / max(1.0, _rms(u) / hp["d"])
    alpha = max(eps2, _rms(x)) * min(hp["lr"], 1 / np.sqrt(t))
    return x * (1 - hp["lr"] * hp["weight_decay"]) - alpha * u


def swats(x, g, state, t, hp):
    """Keskar & Socher 2017, Algorithm 1 (per parameter tensor): Adam's step p, gamma =
    p.p / -p.g, lambda = EMA(beta2) of gamma, Lambda = lambda / (1 - beta2^t); switch to
    SGD (b = beta1 b + g, x -= (1 - beta1) Lambda b) once t > 1, Lambda > 0, |Lambda - gamma| < eps."""
    g = _grad(x, g, hp)
    b1, b2 = hp["betas"]
    if t == 1:
        state.update(m=np.zeros_like(x), v=np.zeros_like(x), b=np.zeros_like(x), lam=0.0, sgd_lr=0.0)
    if state["sgd_lr"] > 0:
        state["b"] = b1 * state["b"] + g
        return x - (1 - b1) * state["sgd_lr"] * state["b"]
    state["m"] = b1 * state["m"] + (1 - b1) * g
    state["v"] = b2 * state["v"] + (1 - b2) * g * g
    p = -hp["lr"] * np.sqrt(1 - b2**t) / (1 - b1**t) * state["m"] / (np.sqrt(state["v"]) + hp["eps"])
    pg = float(np.sum(p * g))
    if pg != 0:
        gamma = float(np.sum(p * p)) / -pg
        state["lam"] = b2 * state["lam"] + (1 - b2) * gamma
        estimate = state["lam"] / (1 - b2**t)
        if t > 1 and estimate > 0 and abs(estimate - gamma) < hp["eps"]:
            state["sgd_lr"] = estimate
    return x + p


def lamb(x, g, state, t, hp):
    """You et al. 2020, Algorithm 2 (phi = identity): r = m_hat / (sqrt(v_hat) + eps),
    u = r + wd x, x -= lr ||x|| / ||u|| u (the ratio 1 where either norm is 0)."""
    g = -g if hp["maximize"] else g
    b1, b2 = hp["betas"]
    m, v = _moments(g, state, hp)
    u = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + hp["eps"]) + hp["weight_decay"] * x
    x_norm, u_norm = np.linalg.norm(x), np.linalg.norm(u)
    ratio = x_norm / u_norm if x_norm > 0 and u_norm > 0 else 1.0
    return x - hp["lr"] * ratio * u


def lars(x, g, state, t, hp):
    """You, Gitman & Ginsburg 2017, Algorithm 1: local_lr = eta ||x|| / (||g|| + wd ||x||),
    v = mu v + lr local_lr (g + wd x) (torch's SGD buffer: v_1 unscaled by dampening,
    v_t = mu v_{t-1} + (1 - tau) d_t), x -= v, or x -= d_t + mu v_t (Nesterov)."""
    g = -g if hp["maximize"] else g
    wd = hp["weight_decay"]
    x_norm, g_norm = np.linalg.norm(x), np.linalg.norm(g)
    denominator = g_norm + wd * x_norm
    local_lr = hp["trust_coefficient"] * x_norm / denominator if x_norm > 0 and denominator > 0 else 1.0
    d = hp["lr"] * local_lr * (g + wd * x)
    mu = hp["momentum"]
    if mu == 0:
        return x - d
    state["v"] = d.copy() if t == 1 else mu * state["v"] + (1 - hp["dampening"]) * d
    return x - (d + mu * state["v"] if hp["nesterov"] else state["v"])


def _cautious(u, g):
    """Liang et al. 2024 (the authors' code's normalization): u * [u g > 0] * numel / (sum of the mask + 1)."""
    mask = (u * g > 0).astype(u.dtype)
    return u * mask * (mask.size / (mask.sum() + 1))


def cautious_adamw(x, g, state, t, hp):
    """C-AdamW (Liang et al. 2024): Adam's r masked by [r g > 0], rescaled,
    x -= lr (r_masked + wd x)."""
    g = -g if hp["maximize"] else g
    b1, b2 = hp["betas"]
    m, v = _moments(g, state, hp)
    r = (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + hp["eps"])
    return x - hp["lr"] * (_cautious(r, g) + hp["weight_decay"] * x)


def cautious_lion(x, g, state, t, hp):
    """C-Lion (Liang et al. 2024): Lion's sign step masked by [s g > 0], rescaled."""
    g = -g if hp["maximize"] else g
    b1, b2 = hp["betas"]
    m = state.get("m", np.zeros_like(x))
    s = np.sign(b1 * m + (1 - b1) * g)
    state["m"] = b2 * m + (1 - b2) * g
    return x - hp["lr"] * (_cautious(s, g) + hp["weight_decay"] * x)
def _schedule_free(y, direction, state, t, hp, beta):
    """Defazio et al. 2024, eq. (1)-(3), from the gradient's direction d_t at y:
    z_t = z_{t-1} - gamma_t d_t, x_t = (1 - c_t) x_{t-1} + c_t z_t, y = (1 - beta) z_t + beta x_t
    (x_0 = z_0 = y_0), with gamma_t = lr min(1, t / warmup_steps), c_t = w_t / sum_{s<=t} w_s,
    w_t = t^r (max_{s<=t} gamma_s)^weight_lr_power. Returns y, the point gradients are taken at
    (train mode); ``state["x"]`` is the average x, the point to evaluate (eval mode)."""
    if t == 1:
        state.update(z=y.copy(), x=y.copy(), weights=0.0, lr_max=0.0)
    warmup = hp["warmup_steps"]
    lr = hp["lr"] * (min(1.0, t / warmup) if warmup else 1.0)
    state["lr_max"] = max(state["lr_max"], lr)
    weight = t ** hp["r"] * state["lr_max"] ** hp["weight_lr_power"]
    state["weights"] += weight
    c = weight / state["weights"] if state["weights"] else 0.0
    state["z"] = state["z"] - lr * direction
    state["x"] = (1 - c) * state["x"] + c * state["z"]
    return (1 - beta) * state["z"] + beta * state["x"]


def schedule_free_sgd(y, g, state, t, hp):
    """Schedule-Free SGD: d_t = g + wd y (L2 at y), beta = momentum."""
    return _schedule_free(y, g + hp["weight_decay"] * y, state, t, hp, hp["momentum"])


def schedule_free_adamw(y, g, state, t, hp):
    """Schedule-Free AdamW: v_t = b2 v_{t-1} + (1 - b2) g^2, d_t = g / (sqrt(v_t / (1 - b2^t)) + eps)
    + wd y, beta = b1."""
    b1, b2 = hp["betas"]
    state["v"] = b2 * state.get("v", np.zeros_like(y)) + (1 - b2) * g * g
    direction = g / (np.sqrt(state["v"] / (1 - b2**t)) + hp["eps"]) + hp["weight_decay"] * y
    return _schedule_free(y, direction, state, t, hp, b1)


# Prodigy and D-Adaptation estimate one step size d from sums over every tensor of the group:
# these two step the group's tensors together, ``xs = step(xs, gs, state, t, hp)``.

def _bias_correction(t, hp):
    b1, b2 = hp["betas"]
    return np.sqrt(1 - b2**t) / (1 - b1**t) if hp["use_bias_correction"] else 1.0


def prodigy(xs, gs, state, t, hp):
    """Mishchenko & Defazio 2024, Algorithm 3 (Prodigy Adam) as prodigyopt 1.1 runs it. With
    d_t the estimate, lr_t = d_t lr b_t (b_t: the bias correction, if used), x0 the start and
    [::p] every slice_p-th element: r = b3 r + (d/d0) lr_t <g[::p], x0 - x[::p]>,
    m = b1 m + d (1 - b1) g, v = b2 v + d^2 (1 - b2) g^2, s = b3 s + (d/d0) lr_t g[::p]
    (safeguard_warmup: (d/d0) d g[::p]); d_hat = d_coef r / sum |s|_1; d = max(d, d_hat) while
    d = d0, d_max = max(d_max, d_hat), d = min(d_max, growth_rate d);
    x -= lr_t (m / (sqrt(v) + d eps) + wd x) (decouple; else wd x joins g)."""
    b1, b2 = hp["betas"]
    b3 = np.sqrt(b2) if hp["beta3"] is None else hp["beta3"]
    d0, every, wd = hp["d0"], hp["slice_p"], hp["weight_decay"]
    if t == 1:
        state.update(d=d0, d_max=d0, r=0.0, m=[np.zeros_like(x) for x in xs], v=[np.zeros_like(x) for x in xs],
                     s=[np.zeros_like(x.ravel()[::every]) for x in xs], x0=[x.ravel()[::every].copy() for x in xs])
    d = state["d"]
    lr = d * hp["lr"] * _bias_correction(t, hp)
    if not hp["decouple"]:
        gs = [g + wd * x for g, x in zip(gs, xs)]
    state["r"] = b3 * state["r"] + (d / d0) * lr * sum(
        float(np.dot(g.ravel()[::every], x0 - x.ravel()[::every])) for g, x, x0 in zip(gs, xs, state["x0"]))
    state["m"] = [b1 * m + d * (1 - b1) * g for m, g in zip(state["m"], gs)]
    state["v"] = [b2 * v + d * d * (1 - b2) * g * g for v, g in zip(state["v"], gs)]
    s_scale = (d / d0) * (d if hp["safeguard_warmup"] else lr)
    state["s"] = [b3 * s + s_scale * g.ravel()[::every] for s, g in zip(state["s"], gs)]
    d_hat = hp["d_coef"] * state["r"] / sum(float(np.sum(np.abs(s))) for s in state["s"])
    if d == d0:
        d = max(d, d_hat)
    state["d_max"] = max(state["d_max"], d_hat)
    state["d"] = d = min(state["d_max"], d * hp["growth_rate"])
    decay = wd if hp["decouple"] else 0.0
    # b1 = 0: prodigyopt steps with the new d times g, where m holds the old d times g.
    ms = state["m"] if b1 > 0 else [d * g for g in gs]
    return [x - lr * (m / (np.sqrt(v) + d * hp["eps"]) + decay * x) for x, m, v in zip(xs, ms, state["v"])]


def dadapt_adam(xs, gs, state, t, hp):
    """Defazio & Mishchenko 2023, Algorithm 4 (D-Adapted Adam) as dadaptation 3.2 runs it, with
    lr_t = d lr b_t, a = sqrt(v) + eps of the previous step and sb = sqrt(b2):
    r = sb r + (1 - sb) lr_t <g, s / a>, m = b1 m + lr_t (1 - b1) g, v = b2 v + (1 - b2) g^2,
    s = sb s + lr_t (1 - sb) g; d = max(d, min(r / ((1 - sb) sum |s|_1), growth_rate d));
    x -= m / (sqrt(v) + eps) + lr_t wd x (decouple; else wd x joins g, the default)."""
    b1, b2 = hp["betas"]
    sb, eps, wd = np.sqrt(b2), hp["eps"], hp["weight_decay"]
    if t == 1:
        state.update(d=hp["d0"], r=0.0, m=[np.zeros_like(x) for x in xs], v=[np.zeros_like(x) for x in xs],
                     s=[np.zeros_like(x) for x in xs])
    d = state["d"]
    lr = d * hp["lr"] * _bias_correction(t, hp)
    if not hp["decouple"]:
        gs = [g + wd * x for g, x in zip(gs, xs)]
    inner = sum(float(np.sum(g * s / (np.sqrt(v) + eps))) for g, s, v in zip(gs, state["s"], state["v"]))
    state["r"] = sb * state["r"] + (1 - sb) * lr * inner
    state["m"] = [b1 * m + lr * (1 - b1) * g for m, g in zip(state["m"], gs)]
    state["v"] = [b2 * v + (1 - b2) * g * g for v, g in zip(state["v"], gs)]
    state["s"] = [sb * s + lr * (1 - sb) * g for s, g in zip(state["s"], gs)]
    d_hat = state["r"] / ((1 - sb) * sum(float(np.sum(np.abs(s))) for s in state["s"]))
    state["d"] = max(d, min(d_hat, d * hp["growth_rate"]))
    decay = wd if hp["decouple"] else 0.0
    return [x - m / (np.sqrt(v) + eps) - lr * decay * x for x, m, v in zip(xs, state["m"], state["v"])]
