"""Colour as classes (Zhang, Isola and Efros 2016, "Colorful Image Colorization", section 2.1).

A loss that regresses ab predicts the mean of the plausible colours, a brownish grey. The classification head
instead predicts, per pixel, a distribution over quantized ab; rare colours are weighted up in the loss; the
colour is read out as the annealed mean of the distribution, between its mean (T = 1) and its mode (T -> 0).

ab here is in Lab units (about -128..127) unless a name says "/ 128". The grid, the prior and the weights are
numpy (computed once, from data, stored in the model file); the per-pixel maths is keras.ops, so it runs in
the training step and in the model under any backend.
"""
from dataclasses import dataclass

import cv2
import numpy as np
from keras import ops

from colorize_core.lab import AB_SCALE

GRID_STEP = 10.0  # ab bin size, as Zhang et al.
GRID_HALF = 12  # bin centres at -120, -110, .., 120 on each axis: a 25 x 25 grid covering Lab's ab
GRID_SIDE = 2 * GRID_HALF + 1
NEIGHBOURS, SIGMA = 5, 5.0  # soft encoding: the 5 nearest bins, Gaussian weights with sigma 5 (ab units)


def grid_index(ab: np.ndarray) -> np.ndarray:
    """Flat index on the 25 x 25 grid of the bin nearest to each (a, b) (numpy, Lab units)."""
    cell = np.clip(np.rint(np.asarray(ab, np.float32) / GRID_STEP), -GRID_HALF, GRID_HALF).astype(np.int32) + GRID_HALF
    return cell[..., 0] * GRID_SIDE + cell[..., 1]


def grid_centre(index: np.ndarray) -> np.ndarray:
    """The (a, b) centre of flat grid bins `index`, shape (..., 2)."""
    index = np.asarray(index)
    return np.stack([index // GRID_SIDE, index % GRID_SIDE], axis=-1).astype(np.float32) * GRID_STEP - GRID_HALF * GRID_STEP


@dataclass(frozen=True)
class ColourClasses:
    """The bins the classification head predicts over: the grid bins that occur in the training data.

    `centres` (Q, 2) in Lab units; `prior` (Q,) the empirical frequency of each bin in the training pixels (sums
    to 1). Both are stored in the model file (the AnnealedMean layer's config)."""

    centres: np.ndarray
    prior: np.ndarray

    @property
    def count(self) -> int:
        return len(self.centres)


def classes_from_data(ab: np.ndarray) -> ColourClasses:
    """The bins that occur in training targets `ab` (..., 2, Lab units) and the frequency of each."""
    counts = np.bincount(grid_index(ab).ravel(), minlength=GRID_SIDE * GRID_SIDE).astype(np.float64)
    seen = np.flatnonzero(counts)
    return ColourClasses(grid_centre(seen), (counts[seen] / counts[seen].sum()).astype(np.float32))


def rebalancing_weights(classes: ColourClasses, mix: float = 0.5, sigma: float = SIGMA) -> np.ndarray:
    """Per-bin loss weights: the prior smoothed by a Gaussian (sigma in ab units) on the grid, mixed with the
    uniform distribution, inverted: w ~ 1 / ((1 - mix) p~ + mix / Q); normalised so that the weight averages 1
    over the training pixels (sum of prior * w is 1). mix = 1 weights every colour alike; mix = 0 fully inverts."""
    grid = np.zeros(GRID_SIDE * GRID_SIDE, np.float64)
    index = grid_index(classes.centres)
    grid[index] = classes.prior
    smoothed = cv2.GaussianBlur(grid.reshape(GRID_SIDE, GRID_SIDE), (0, 0), sigma / GRID_STEP).ravel()[index]
    smoothed /= smoothed.sum()
    weights = 1.0 / ((1 - mix) * smoothed + mix / classes.count)
    return (weights / np.sum(classes.prior * weights)).astype(np.float32)


def _squared_distances(ab, centres):
    """(..., Q) squared distance of each (a, b) to each bin centre (keras.ops)."""
    ab = ops.cast(ab, "float32")
    return ops.sum(ops.square(ops.expand_dims(ab, -2) - ops.convert_to_tensor(centres, "float32")), axis=-1)


def soft_encode(ab, centres: np.ndarray, neighbours: int = NEIGHBOURS, sigma: float = SIGMA):
    """Targets (..., Q): each (a, b) spread over its `neighbours` nearest bins with Gaussian weights; sums to 1."""
    d2 = _squared_distances(ab, centres)
    nearest = ops.top_k(-d2, neighbours)[0]  # minus the squared distances of the nearest bins, largest first
    # Distances relative to the nearest bin's: the same weights once normalised, and no 0 / 0 for a colour far
    # from every bin (one the training data never had).
    weights = ops.where(-d2 >= nearest[..., -1:], ops.exp((-d2 - nearest[..., :1]) / (2 * sigma**2)), 0.0)
    return weights / ops.sum(weights, axis=-1, keepdims=True)


def nearest_bin(ab, centres: np.ndarray):
    """Index (...) of the bin nearest to each (a, b) (keras.ops)."""
    return ops.argmin(_squared_distances(ab, centres), axis=-1)


def annealed_mean(logits, centres: np.ndarray, temperature: float):
    """ab / 128 (..., 2) from class logits (..., Q): softmax(log p / T) . centres, the annealed mean.

    log p / T = (logits - logsumexp) / T, and the constant drops out of the softmax: softmax(logits / T).
    T = 1 gives the mean of the predicted distribution, T -> 0 its mode; Zhang et al. chose 0.38."""
    annealed = ops.softmax(ops.cast(logits, "float32") / temperature, axis=-1)
    return ops.matmul(annealed, ops.convert_to_tensor(centres, "float32")) / AB_SCALE


def confidence(logits):
    """Per image (first axis), 1 - the mean over pixels of the predicted distribution's entropy / log Q: 1 when
    every pixel is sure of one bin, 0 when every pixel spreads evenly over all of them (keras.ops)."""
    log_p = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    entropy = -ops.sum(ops.exp(log_p) * log_p, axis=-1) / np.log(logits.shape[-1])
    return 1.0 - ops.mean(ops.reshape(entropy, (ops.shape(entropy)[0], -1)), axis=-1)
