"""Training photos as uint8, and the augmentation inside the compiled training step.

A training step gets decoded photos, not examples: uint8 RGB on a fixed CANVAS x CANVAS canvas (short side
PHOTO_SIDE, long side centre-cropped to CANVAS) with each photo's own height and width. The random crop (a side
of CROP_SCALE of the short side), the flip, sRGB -> Lab and the 56x56 ab targets are keras.ops in the step
itself, so they run on the accelerator under JAX or TensorFlow and no Python thread makes examples: beside
each batch come only 4 uniform numbers a photo (random_draws).
"""
import keras
import numpy as np
from keras import layers, ops

from colorize_core import lab

PHOTO_SIDE = lab.MODEL_SIZE  # photos are kept at this short side: a crop is then resized up (bilinear), never down
CANVAS = 288  # the long side kept (centre): 3:2 photos lose 1/7 of their width, squares nothing
CROP_SCALE = (0.5, 1.0)  # random crops: a side of 50-100% of the photo's short side
TARGET = 56  # the loss is taken at 56x56: colour is smooth, and it is 16x cheaper than 224x224

# sRGB (D65) -> CIE Lab with OpenCV's constants (lab.py); they agree with cv2.COLOR_BGR2Lab on float images
# to 0.1 on average (OpenCV uses tables).
_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423],
                        [0.212671, 0.715160, 0.072169],
                        [0.019334, 0.119193, 0.950227]], np.float32) / np.array([[0.950456], [1.0], [1.088754]], np.float32)


def to_canvas(bgr: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """A decoded photo (8- or 16-bit BGR) -> (uint8 RGB on a CANVAS x CANVAS canvas, top-left; its (height, width))."""
    import cv2

    if bgr.dtype != np.uint8:
        bgr = (bgr.astype(np.float32) * (255.0 / lab.max_value(bgr)) + 0.5).astype(np.uint8)
    h, w = bgr.shape[:2]
    scale = PHOTO_SIDE / min(h, w)
    if scale != 1:
        h, w = max(PHOTO_SIDE, round(h * scale)), max(PHOTO_SIDE, round(w * scale))
        bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    top, left = (h - min(h, CANVAS)) // 2, (w - min(w, CANVAS)) // 2
    photo = np.ascontiguousarray(bgr[top:top + CANVAS, left:left + CANVAS, ::-1])
    # The canvas beyond the photo repeats its last row and column, as OpenCV's resize does at a border: a
    # crop's last output pixel reads up to half a pixel past the crop's edge.
    canvas = cv2.copyMakeBorder(photo, 0, CANVAS - photo.shape[0], 0, CANVAS - photo.shape[1], cv2.BORDER_REPLICATE)
    return canvas, photo.shape[:2]


def rgb_to_lab(rgb):
    """sRGB in [0, 1] (..., 3) -> CIE Lab (..., 3), in keras.ops."""
    linear = ops.where(rgb <= 0.04045, rgb / 12.92, ops.power((rgb + 0.055) / 1.055, 2.4))
    xyz = ops.matmul(linear, ops.convert_to_tensor(_RGB_TO_XYZ.T))
    f = ops.where(xyz > 0.008856, ops.power(ops.maximum(xyz, 0.008856), 1 / 3), 7.787 * xyz + 16 / 116)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return ops.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], axis=-1)


def crop_transforms(sizes, u):
    """Per photo (height, width) and 4 uniform numbers -> the projective transforms (B, 8) that take a random
    square crop (u[0]: its side, u[1], u[2]: where) to MODEL_SIZE x MODEL_SIZE, mirrored where u[3] < 0.5."""
    h, w = ops.cast(sizes[:, 0], "float32"), ops.cast(sizes[:, 1], "float32")
    side = ops.floor(ops.minimum(h, w) * (CROP_SCALE[0] + (CROP_SCALE[1] - CROP_SCALE[0]) * u[:, 0]))
    top, left = ops.floor((h - side + 1) * u[:, 1] * 0.9999), ops.floor((w - side + 1) * u[:, 2] * 0.9999)
    step = side / lab.MODEL_SIZE
    flip = ops.cast(u[:, 3] < 0.5, "float32")
    # Output pixel x (its centre at x + 0.5) reads the crop at left + (x + 0.5) step - 0.5, or mirrored.
    x_scale = step * (1 - 2 * flip)
    x_offset = left + 0.5 * step - 0.5 + flip * (side - step)
    zero = ops.zeros_like(step)
    return ops.stack([x_scale, zero, x_offset, zero, step, top + 0.5 * step - 0.5, zero, zero], axis=1)


def examples(photos, sizes, u):
    """uint8 RGB canvases (B, CANVAS, CANVAS, 3), their (height, width) (B, 2) and uniform numbers (B, 4) ->
    (L (B, 224, 224, 1) in [0, 100], ab / 128 (B, 56, 56, 2)): the network's input and target, as
    training.example makes them from a crop."""
    rgb = ops.cast(photos, "float32") / 255.0
    crops = ops.image.affine_transform(rgb, crop_transforms(sizes, u), interpolation="bilinear", fill_mode="nearest")
    Lab = rgb_to_lab(ops.clip(crops[:, :lab.MODEL_SIZE, :lab.MODEL_SIZE], 0.0, 1.0))
    pool = lab.MODEL_SIZE // TARGET  # 4x4 means: OpenCV's INTER_AREA at a whole factor
    ab = ops.average_pool(Lab[..., 1:], pool, pool, padding="valid") / lab.AB_SCALE
    return Lab[..., :1], ab


def random_draws(rng: np.random.Generator, count: int) -> np.ndarray:
    """The uniform numbers `examples` turns into crops and flips, 4 a photo: drawn beside the batch (by the
    launcher's own generator: a seeded, resumable stream on every backend and every worker), used in the step."""
    return rng.uniform(size=(count, 4)).astype(np.float32)


class Examples(layers.Layer):
    """(photos, sizes, draws) -> (L, ab / 128): `examples` as a layer of the training model, in float32."""

    def __init__(self, **kwargs):
        super().__init__(dtype="float32", **kwargs)

    def call(self, photos, sizes, draws):
        return examples(photos, sizes, draws)

    def compute_output_shape(self, photos_shape, sizes_shape, draws_shape):
        return (photos_shape[0], lab.MODEL_SIZE, lab.MODEL_SIZE, 1), (photos_shape[0], TARGET, TARGET, 2)


def augmenting_trainer(trainer: keras.Model) -> keras.Model:
    """`trainer` (model.training_model: L -> what the loss is taken on, at 56x56) fed by photos: (photos, sizes,
    draws) -> its output and the target, concatenated on the last axis (the target last, 2 channels). Keras's
    compiled step then trains on photos; the loss (split_output) ignores y_true."""
    photos = keras.Input((CANVAS, CANVAS, 3), dtype="uint8", name="photos")
    sizes = keras.Input((2,), dtype="int32", name="sizes")
    draws = keras.Input((4,), dtype="float32", name="draws")
    L, ab = Examples(name="examples")(photos, sizes, draws)
    out = layers.Concatenate(dtype="float32")([ops.cast(trainer(L), "float32"), ab])
    return keras.Model([photos, sizes, draws], out, name="augmenting_trainer")


def split_output(out):
    """augmenting_trainer's output -> (target ab / 128, the trainer's output)."""
    return out[..., -2:], out[..., :-2]
