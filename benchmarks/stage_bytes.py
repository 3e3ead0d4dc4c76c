"""What the colorize stages hand each other for large scans: the bytes Ray's object store holds per image
between decode and predict and between predict and encode, with L carried as uint16 (the job) or as float32
(as before), and each stage's peak memory, in one run.

    python -m benchmarks.stage_bytes --size 6000x4000 --images 4

The scans are grey JPEGs (8-bit) and 16-bit PNGs made from examples/castle.jpg upscaled, with film grain.
Each variant runs the three stage functions (no Ray) in a fresh process and reports how far its peak RSS rose
above what the process held with the model loaded; the model is a tiny stand-in of the colorizer's shape
(the model's own memory is not what is measured).
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import ROOT, print_result


def batch_bytes(batch: dict) -> int:
    """Bytes of a batch's arrays, as pickled out of band into the object store (object columns: each array)."""
    total = 0
    for column in batch.values():
        total += sum(getattr(v, "nbytes", len(v) if isinstance(v, (bytes, str)) else 8) for v in column) \
            if column.dtype == object else column.nbytes
    return total


def run_variant(folder: str, model: str, L_float32: bool) -> dict:
    """In this process: the three stages over every scan in `folder`; the bytes between them and peak RSS."""
    import numpy as np

    from colorize_core.model_file import inspect_model_file, resolve_knobs
    from colorize_core.batches import ragged
    from colorize_core.settings import JobSettings
    from colorize_core.stages import Predictor, encode_and_write, read_and_decode
    from colorize_core.storage import Location

    facts = inspect_model_file(model)
    temperature, chroma_gain = resolve_knobs(facts, None, None)  # the model's own defaults, as the job
    settings = JobSettings(input=Location(folder), output=Location(folder + "-out"), run_id="bench", model_uri=model,
                           model_sha256=facts.sha256, temperature=temperature, chroma_gain=chroma_gain, overwrite=True)
    keys = Location(folder).list_keys()
    predictor, after_decode, after_predict = Predictor(settings), 0, 0
    predictor(read_and_decode({"key": np.array(["missing"], dtype=object)}, settings))  # TensorFlow warmed up
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for key in keys:  # one image a batch: what a 24 MP scan costs each hand-over
        batch = read_and_decode({"key": np.array([key], dtype=object)}, settings)
        if L_float32:  # the previous hand-over: L as float32 in [0, 100]
            batch["L"] = ragged([L.astype(np.float32) / np.float32(65535 / 100) for L in batch["L"]])
        after_decode += batch_bytes(batch)
        batch = predictor(batch)
        after_predict += batch_bytes(batch)
        rows = encode_and_write(batch, settings)
        assert rows["status"][0] == "ok", rows["error"][0]
    return {"images": len(keys), "decode_to_predict_MB": after_decode / len(keys) / 1e6,
            "predict_to_encode_MB": after_predict / len(keys) / 1e6,
            "peak_rss_MB": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1e3}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="6000x4000")
    p.add_argument("--images", type=int, default=4, help="scans of each kind (8-bit JPEG, 16-bit PNG)")
    p.add_argument("--variant", help=argparse.SUPPRESS)  # internal: FOLDER MODEL float32|uint16, in a child
    args, rest = p.parse_known_args(argv)
    if args.variant:
        print(json.dumps(run_variant(args.variant, rest[0], rest[1] == "float32")))
        return 0
    import cv2
    import numpy as np

    from colorize_core import codec, runtime
    from benchmarks.memory import tiny_model

    runtime.prepare_environment()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        grey = cv2.imread(str(ROOT / "examples" / "castle.jpg"), cv2.IMREAD_GRAYSCALE)
        scan = cv2.resize(grey, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        scan += np.random.default_rng(0).normal(0, 4, scan.shape).astype(np.float32)
        for i in range(args.images):
            Path(tmp, "scans").mkdir(exist_ok=True)
            Path(tmp, "scans", f"scan{i}.jpg").write_bytes(codec.encode(np.clip(scan, 0, 255).astype(np.uint8), "jpeg", 95))
            Path(tmp, "scans", f"scan{i}.png").write_bytes(codec.encode(np.clip(scan * 257, 0, 65535).astype(np.uint16), "png"))
        model = str(tiny_model(Path(tmp) / "tiny.keras"))
        print(f"{args.images} 8-bit JPEG + {args.images} 16-bit PNG scans of {args.size}; per image, one image a batch:")
        print("| L handed on as | decode -> predict MB | predict -> encode MB | peak RSS MB above the process's own (model loaded) |")
        print("|---|---|---|---|")
        results = {}
        for variant in ("float32", "uint16"):
            out = subprocess.run([sys.executable, "-m", "benchmarks.stage_bytes", "--variant", str(Path(tmp, "scans")),
                                  model, variant], capture_output=True, text=True, cwd=ROOT, check=True)
            results[variant] = r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {variant} | {r['decode_to_predict_MB']:.1f} | {r['predict_to_encode_MB']:.1f} | {r['peak_rss_MB']:.0f} |")
        a, b = results["float32"], results["uint16"]
        print(f"float32 / uint16: decode -> predict {a['decode_to_predict_MB'] / b['decode_to_predict_MB']:.2f}x, "
              f"predict -> encode {a['predict_to_encode_MB'] / b['predict_to_encode_MB']:.2f}x, "
              f"peak RSS {a['peak_rss_MB'] / b['peak_rss_MB']:.2f}x")
    figures = ", ".join(f"L as {variant}: decode -> predict {r['decode_to_predict_MB']:.1f} MB an image, predict -> "
                        f"encode {r['predict_to_encode_MB']:.1f} MB, peak RSS {r['peak_rss_MB']:.0f} MB"
                        for variant, r in results.items())
    return print_result("stage_bytes", f"{args.size}: {figures}")


if __name__ == "__main__":
    sys.exit(main())
