"""The colorizer network (after "Image Colorization with Deep Convolutional Neural Networks").

L (224x224, [0, 100]) -> VGG16 encoder (block1_conv1 .. block5_pool, ImageNet weights) -> a decoder that
upsamples 7x7, merging each encoder block's output through a residual skip -> one of two heads:
- regression (the thesis's): ab / 128 in [-1, 1] (tanh) at 224x224;
- classification (Zhang et al. 2016): a distribution over ~300 ab bins at 56x56, read out by the annealed
  mean (colour_classes) into ab / 128.
Written with keras.ops only, so it runs under TensorFlow, JAX or PyTorch. `Colorizer` is a model file loaded
for the job with its knobs; load_colorizer loads one in safe mode (the file's checks without Keras are
model_file.py's).
"""
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from colorize_core import colour_classes
from colorize_core.augment import TARGET
from colorize_core.lab import MODEL_SIZE
from colorize_core.model_file import Head

# Encoder outputs merged by the decoder, deepest first; block5_pool (7x7) is where decoding starts.
SKIP_LAYERS = ("block5_conv3", "block4_conv3", "block3_conv3", "block2_conv2", "block1_conv2")
DECODER_WIDTHS = (256, 128, 64, 64, 32)
VGG_BGR_MEAN = (103.939, 116.779, 123.68)  # VGG16's own "caffe" preprocessing


@keras.saving.register_keras_serializable(package="colorize")
class LToVGGInput(layers.Layer):
    """L in [0, 100] -> VGG16's input: the grey image (0..255) as three identical channels, BGR means removed."""

    def call(self, L):
        grey = L * (255.0 / 100.0)
        return ops.concatenate([grey - mean for mean in VGG_BGR_MEAN], axis=-1)


CLASS_STAGES = 3  # the classification head reads the decoder at 56x56 (three stages up from 7x7): colour is
# smooth, the loss is taken at 56x56 anyway, and Q (about 300) channels at 224x224 would cost 16x the memory
DEFAULT_TEMPERATURE = 0.38  # Zhang et al.'s annealed-mean temperature, until one is chosen on the val split


@keras.saving.register_keras_serializable(package="colorize")
class AnnealedMean(layers.Layer):
    """Class logits (B, h, w, Q) -> ab / 128 (B, h, w, 2) by the annealed mean at `temperature`.

    Its config stores the colour classes (bin centres and their empirical prior) and the default temperature:
    this layer is how a model file says that it has the classification head, and what its bins are."""

    def __init__(self, centres, prior, temperature: float = DEFAULT_TEMPERATURE, **kwargs):
        kwargs.setdefault("dtype", "float32")  # a softmax over ~300 classes: float32 even under mixed precision
        super().__init__(**kwargs)
        self.centres = np.asarray(centres, np.float32)
        self.prior = np.asarray(prior, np.float32)
        self.temperature = float(temperature)

    def call(self, logits):
        return colour_classes.annealed_mean(logits, self.centres, self.temperature)

    def compute_output_shape(self, shape):
        return (*shape[:-1], 2)

    def get_config(self):
        return {**super().get_config(), "centres": self.centres.tolist(), "prior": self.prior.tolist(),
                "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="colorize")
class Confidence(layers.Layer):
    """Class logits (B, h, w, Q) -> (B,) confidence (colour_classes.confidence); added at load, not stored."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, logits):
        return colour_classes.confidence(logits)

    def compute_output_shape(self, shape):
        return (shape[0],)


def build_colorizer(encoder_weights: str | None = None, l1: float = 0.0, l2: float = 1e-5, head: Head = Head.REGRESSION,
                    classes: colour_classes.ColourClasses | None = None) -> keras.Model:
    """The colorizer: `encoder_weights` is "imagenet" (Keras downloads them), a .weights.h5 path, or None.

    l1 and l2 are the thesis's kernel regularization coefficients on the decoder. `head` "regression" is the
    thesis's: ab / 128 at 224x224 (tanh). "classification" predicts logits over `classes` at 56x56 and decodes
    them with an AnnealedMean layer into ab / 128 at 56x56 (the job resizes ab to each image's own size).
    """
    if head not in tuple(Head):
        raise ValueError(f"head must be one of {', '.join(Head)}, not {head!r}")
    if head == Head.CLASSIFICATION and classes is None:
        raise ValueError("the classification head needs its colour classes (colour_classes.classes_from_data)")
    vgg = keras.applications.VGG16(
        include_top=False, weights=encoder_weights, input_shape=(MODEL_SIZE, MODEL_SIZE, 3)
    )
    encoder = keras.Model(
        vgg.input, [vgg.get_layer(name).output for name in SKIP_LAYERS] + [vgg.output], name="encoder"
    )
    regularizer = keras.regularizers.L1L2(l1=l1, l2=l2)

    def conv(width: int, size: int, x, **kwargs):
        return layers.Conv2D(width, size, padding="same", kernel_regularizer=regularizer, **kwargs)(x)

    L = keras.Input((MODEL_SIZE, MODEL_SIZE, 1), name="L")
    *skips, x = encoder(LToVGGInput(name="vgg_input")(L))
    stages = len(DECODER_WIDTHS) if head == Head.REGRESSION else CLASS_STAGES
    for skip, width in list(zip(skips, DECODER_WIDTHS))[:stages]:
        x = layers.UpSampling2D(2, interpolation="bilinear")(x)
        x = conv(width, 3, x)
        x = layers.Add()([x, conv(width, 1, skip)])  # residual merge of the encoder's features at this scale
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = conv(width, 3, x, activation="relu")
    if head == Head.REGRESSION:
        # Small initial weights: an untrained decoder starts near grey (a = b = 0, MSE's neutral guess), not
        # saturated in tanh where gradients vanish.
        ab = conv(2, 3, x, activation="tanh", name="ab",
                  kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3))
        return keras.Model(L, ab, name="colorizer")
    x = conv(256, 1, x, activation="relu")
    # An untrained head predicts the training data's own colour prior everywhere (bias log p, tiny kernel).
    logits = conv(classes.count, 1, x, name="ab_logits", dtype="float32",
                  kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3),
                  bias_initializer=keras.initializers.Constant(np.log(np.maximum(classes.prior, 1e-8))))
    return keras.Model(L, AnnealedMean(classes.centres, classes.prior, name="annealed_mean")(logits), name="colorizer")


def head_of(model: keras.Model) -> Head:
    """Which head a colorizer has: classification if it holds an AnnealedMean layer, else regression."""
    return Head.CLASSIFICATION if any(isinstance(l, AnnealedMean) for l in model.layers) else Head.REGRESSION


def _trunk_output(model: keras.Model):
    """The model's output before its stored default chroma gain (a final Rescaling layer named chroma_gain)."""
    last = model.layers[-1]
    return last.input if last.name == "chroma_gain" else model.output


def default_gain(model: keras.Model) -> float:
    """The chroma gain a model file carries (its final chroma_gain layer), 1.0 where it carries none."""
    last = model.layers[-1]
    return float(last.scale) if last.name == "chroma_gain" else 1.0


def training_model(model: keras.Model) -> keras.Model:
    """What the loss is taken on: regression, ab / 128 average-pooled to 56x56; classification, the 56x56
    logits. Shares its layers (weights) with `model`; any stored chroma gain is left out."""
    if head_of(model) == Head.CLASSIFICATION:
        return keras.Model(model.input, model.get_layer("annealed_mean").input)
    ab = _trunk_output(model)
    return keras.Model(model.input, layers.AveragePooling2D(MODEL_SIZE // TARGET, dtype="float32")(ab))


def with_defaults(model: keras.Model, temperature: float | None = None, gain: float | None = None) -> keras.Model:
    """The same network carrying other defaults: the annealed-mean temperature (classification head) and the
    chroma gain (stored as a final Rescaling layer named chroma_gain, none when 1). None keeps the current one."""
    gain = default_gain(model) if gain is None else gain
    out = _trunk_output(model)
    if head_of(model) == Head.CLASSIFICATION:
        annealed = model.get_layer("annealed_mean")
        out = AnnealedMean(annealed.centres, annealed.prior,
                           annealed.temperature if temperature is None else temperature, name="annealed_mean")(annealed.input)
    elif temperature is not None:
        raise ValueError("a temperature applies to the classification head only; this model has the regression head")
    if gain != 1.0:
        out = layers.Rescaling(gain, name="chroma_gain")(out)
    return keras.Model(model.input, out, name="colorizer")


def decoder_layers(model: keras.Model) -> list:
    """The layers with weights outside the encoder, in order: what training changes when the encoder is frozen."""
    return [l for l in model.layers if l.weights and l.name != "encoder"]


def transplant(source: keras.Model, target: keras.Model) -> int:
    """Copy into `target` the encoder of `source` and its decoder layers, in order, for as long as their shapes
    match (a regression model's decoder stages into a classification model's trunk). Returns layers copied."""
    target.get_layer("encoder").set_weights(source.get_layer("encoder").get_weights())
    copied = 1
    for a, b in zip(decoder_layers(source), decoder_layers(target)):
        if [w.shape for w in a.get_weights()] != [w.shape for w in b.get_weights()]:
            break
        b.set_weights(a.get_weights())
        copied += 1
    return copied


def with_head(model: keras.Model, head: Head, classes: colour_classes.ColourClasses | None = None) -> keras.Model:
    """`model` if it has `head`; else a new model of that head (over `classes`, for classification) with
    `model`'s encoder and as much of its decoder as fits (transplant)."""
    if head_of(model) == head:
        return model
    new = build_colorizer(None, head=head, classes=classes)
    transplant(model, new)
    return new


class Colorizer:
    """A colorizer file loaded for the job, with its knobs: `temperature` (classification head; default: the
    file's) is built into the network; the chroma gain is not applied here but in lab.recombine, which keeps L.

    predict(L batch) -> (ab / 128, per-image confidence or None): the regression head has no distribution to
    take a confidence from, so it gives None (the manifest's null). With `flip_average`, each image and its
    mirror are predicted and averaged (twice the model time)."""

    def __init__(self, model: keras.Model, temperature: float | None = None, flip_average: bool = False):
        self.head = head_of(model)
        self.flip_average = flip_average
        self.default_gain = default_gain(model)
        if self.head == Head.CLASSIFICATION:
            annealed = model.get_layer("annealed_mean")
            self.default_temperature = annealed.temperature
            self.temperature = self.default_temperature if temperature is None else float(temperature)
            logits = annealed.input
            self.network = keras.Model(model.input, [
                AnnealedMean(annealed.centres, annealed.prior, self.temperature, name="annealed_mean")(logits),
                Confidence(name="confidence")(logits)])
        else:
            if temperature is not None:
                raise ValueError("--temperature applies to the classification head only; this model has the "
                                 "regression head (use --chroma-gain)")
            self.default_temperature = self.temperature = None
            self.network = keras.Model(model.input, _trunk_output(model))

    @classmethod
    def load(cls, path: str | Path, precision: str = "float32", temperature: float | None = None,
             size: int | None = None, flip_average: bool = False) -> "Colorizer":
        return cls(load_colorizer(path, precision, size), temperature, flip_average)

    def predict(self, L: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if not self.flip_average:
            return self._predict(L)
        n = len(L)
        ab, confidence = self._predict(np.concatenate([L, L[:, :, ::-1]]))  # one batch: the images, then mirrors
        ab = (ab[:n] + ab[n:, :, ::-1]) / 2
        return ab, None if confidence is None else (confidence[:n] + confidence[n:]) / 2

    def _predict(self, L: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if self.head == Head.CLASSIFICATION:
            ab, confidence = self.network.predict_on_batch(L)
            return np.asarray(ab, np.float32), np.asarray(confidence, np.float64)
        return np.asarray(self.network.predict_on_batch(L), np.float32), None


def at_size(model: keras.Model, size: int) -> keras.Model:
    """The same network and weights taking size x size inputs: VGG16 without its top and the decoder are fully
    convolutional, so only the input layers' shapes change (to a fixed size: TensorFlow's bilinear upsampling
    needs one)."""
    if model.input.shape[1:3] == (size, size):
        return model
    if size % 32:
        raise ValueError(f"the model size must be a multiple of 32 (VGG16 halves it five times), not {size}")

    def resize_inputs(node):
        if isinstance(node, dict):
            if node.get("class_name") == "InputLayer":
                shape = node["config"]["batch_shape"]
                node["config"]["batch_shape"] = [shape[0], size, size, shape[-1]]
            for value in node.values():
                resize_inputs(value)
        elif isinstance(node, list):
            for value in node:
                resize_inputs(value)

    config = model.get_config()
    resize_inputs(config)
    resized = keras.Model.from_config(config)
    resized.set_weights(model.get_weights())
    return resized


# Keras's dtype policy for each precision (runtime.PRECISIONS but "auto"): the mixed ones keep float32 weights.
DTYPE_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def load_colorizer(path: str | Path, precision: str = "float32", size: int | None = None) -> keras.Model:
    """Load a colorizer .keras file in safe mode (no arbitrary code) as a keras.Model; precision "bfloat16"
    computes in bf16; `size` (default: the file's, 224) the input's side (at_size).

    The precision is always set, whatever the file was saved with: a model trained in bf16 (float32 weights)
    loads to compute in float32 unless asked otherwise."""
    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    if size is not None:
        model = at_size(model, size)
    policy = DTYPE_POLICIES[precision]
    for layer in model._flatten_layers(include_self=False, recursive=True):
        # These stay float32 at no measurable cost. The class logits and their softmax: ~300 classes need the
        # precision. The VGG input: L in [0, 100] cast to bfloat16 keeps steps of 0.25-0.5 (posterized grey);
        # scaled and centred in float32 first, the encoder's cast keeps 2-4x finer steps, and the model's ab
        # moved a third as far from float32's (MODEL_CARD.md, precision).
        if not isinstance(layer, (AnnealedMean, Confidence, LToVGGInput)) and layer.name != "ab_logits":
            layer.dtype_policy = policy
    return model
