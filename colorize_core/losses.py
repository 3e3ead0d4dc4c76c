"""Training losses on ab / 128 (backend-agnostic keras.ops).

`mse` is the thesis's loss; it is why regression colorizers come out sepia and muted: for an uncertain
pixel the mean of the plausible colours is a dull one. `RebalancedMSE` answers that complaint with
Zhang et al. (2016)'s class rebalancing applied to regression: each pixel's squared error is weighted by how
rare its true colour is in the training set, so saturated colours are not averaged away.
"""
import keras
import numpy as np
from keras import ops

from colorize_core import lab

AB_BINS = 16  # bins per axis over ab / 128 in [-1, 1]


def mse(y_true, y_pred):
    y_pred = ops.cast(y_pred, "float32")
    return ops.mean(ops.square(ops.cast(y_true, "float32") - y_pred), axis=(1, 2, 3))


def ab_bin(ab):
    """Flat AB_BINS x AB_BINS bin index of each (a, b) / 128 pair (works on numpy and on tensors)."""
    index = ops.clip(ops.cast(ops.floor((ab + 1.0) * (AB_BINS / 2.0)), "int32"), 0, AB_BINS - 1)
    return index[..., 0] * AB_BINS + index[..., 1]


def rebalancing_weights(ab: np.ndarray, mix: float = 0.5, sigma_bins: float = 1.0) -> np.ndarray:
    """Per-bin weights 1 / ((1 - mix) p + mix / Q), with p the smoothed frequency of each ab bin in the training
    targets `ab` (..., 2) and Q the number of bins seen; normalized so the expected weight is 1."""
    import cv2

    counts = np.bincount(np.asarray(ab_bin(ab)).ravel(), minlength=AB_BINS * AB_BINS).astype(np.float64)
    p = cv2.GaussianBlur(counts.reshape(AB_BINS, AB_BINS), (0, 0), sigma_bins).ravel()
    p /= p.sum()
    seen = counts > 0
    weights = np.where(seen, 1.0 / ((1 - mix) * p + mix / seen.sum()), 0.0)
    weights /= (p * weights).sum()
    return weights.astype(np.float32)


class RebalancedMSE(keras.losses.Loss):
    """Squared ab error weighted by the rarity of the true colour (see rebalancing_weights)."""

    def __init__(self, weights: np.ndarray, name: str = "rebalanced_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.weights = np.asarray(weights, np.float32)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        w = ops.take(ops.convert_to_tensor(self.weights), ab_bin(y_true))
        error = ops.sum(ops.square(y_true - ops.cast(y_pred, "float32")), axis=-1)
        return ops.mean(w * error, axis=(1, 2)) / 2.0

    def get_config(self):
        return {**super().get_config(), "weights": self.weights.tolist()}


class RebalancedCrossEntropy(keras.losses.Loss):
    """The classification head's loss: cross-entropy between the soft-encoded true colour and the predicted
    distribution over the colour classes, each pixel weighted by its true colour's rebalancing weight
    (colour_classes.rebalancing_weights). y_true is ab / 128 (B, h, w, 2); y_pred the logits (B, h, w, Q)."""

    def __init__(self, centres: np.ndarray, weights: np.ndarray, name: str = "rebalanced_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.centres = np.asarray(centres, np.float32)
        self.weights = np.asarray(weights, np.float32)

    def call(self, y_true, y_pred):
        from colorize_core import colour_classes

        ab = ops.cast(y_true, "float32") * lab.AB_SCALE
        target = colour_classes.soft_encode(ab, self.centres)
        w = ops.take(ops.convert_to_tensor(self.weights), colour_classes.nearest_bin(ab, self.centres))
        cross_entropy = -ops.sum(target * ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1), axis=-1)
        return ops.mean(w * cross_entropy, axis=(1, 2))

    def get_config(self):
        return {**super().get_config(), "centres": self.centres.tolist(), "weights": self.weights.tolist()}
