"""The colorizer network (after "Image Colorization with Deep Convolutional Neural Networks").

L (224x224, [0, 100]) -> VGG16 encoder (block1_conv1 .. block5_pool, ImageNet weights) -> a decoder that
upsamples 7x7 back to 224x224, merging each encoder block's output through a residual skip ->
ab / 128 in [-1, 1] (tanh). Written with keras.ops only, so it runs under TensorFlow, JAX or PyTorch.
"""
from pathlib import Path

import keras
from keras import layers, ops

from colorize_core.lab import MODEL_SIZE

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


def build_colorizer(encoder_weights: str | None = None, l1: float = 0.0, l2: float = 1e-5) -> keras.Model:
    """The colorizer: `encoder_weights` is "imagenet" (Keras downloads them), a .weights.h5 path, or None.

    l1 and l2 are the thesis's kernel regularization coefficients on the decoder.
    """
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
    for skip, width in zip(skips, DECODER_WIDTHS):
        x = layers.UpSampling2D(2, interpolation="bilinear")(x)
        x = conv(width, 3, x)
        x = layers.Add()([x, conv(width, 1, skip)])  # residual merge of the encoder's features at this scale
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = conv(width, 3, x, activation="relu")
    # Small initial weights: an untrained decoder starts near grey (a = b = 0, MSE's neutral guess), not
    # saturated in tanh where gradients vanish.
    ab = conv(2, 3, x, activation="tanh", name="ab", kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3))
    return keras.Model(L, ab, name="colorizer")


def load_colorizer(path: str | Path, precision: str = "float32") -> keras.Model:
    """Load a colorizer .keras file in safe mode (no arbitrary code); precision "bfloat16" computes in bf16.

    The precision is always set, whatever the file was saved with: a model trained in bf16 (float32 weights)
    loads to compute in float32 unless asked otherwise."""
    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    policy = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}[precision]
    for layer in model._flatten_layers(include_self=False, recursive=True):
        layer.dtype_policy = policy
    return model
