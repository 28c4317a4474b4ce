"""Gradient transformations: the building blocks every optimizer is chained from."""

from .adadelta import scale_by_adadelta
from .adafactor import clip_by_block_rms, scale_by_factored_rms, scale_by_relative_step_size
from .adagrad import scale_by_adagrad
from .adam import scale_by_adam
from .adamax import scale_by_adamax
from .basic import add_decayed_weights, maximize, scale_by_inverse_time_decay, scale_by_learning_rate
from .clipping import clip_by_global_norm, clip_by_value
from .lion import scale_by_lion
from .momentum import ema, trace
from .muon import nesterov_ema, orthogonalize_by_newton_schulz, scale_by_shape
from .nadam import scale_by_nadam
from .partition import partition
from .radam import scale_by_radam
from .rms import scale_by_rms

__all__ = [
    "add_decayed_weights",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "clip_by_value",
    "ema",
    "maximize",
    "nesterov_ema",
    "orthogonalize_by_newton_schulz",
    "partition",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_factored_rms",
    "scale_by_inverse_time_decay",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_relative_step_size",
    "scale_by_rms",
    "scale_by_shape",
    "trace",
]
