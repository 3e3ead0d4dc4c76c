"""Pack the prepared GPU run's photos and starting model so they travel to the lent GPU machine.

That machine gets only this repository (64 MiB a call, the shipped model alone is 70 MB) and not ../shared.
So: every training photo as a 224x224 centre square (short side resized to 224) in WebP quality 75 (~6.7 KB),
the val photos as the evaluation protocol's 224x224 centre crop in JPEG quality 95 (the same crop the training
run validates on), and the starting model with its weights in float16 (28 MB: predictions differ by < 1e-3).
The pack is split in parts, each sent by its own call (a warm machine keeps what earlier calls carried): part a
(a folder, carried with the wheels) holds the model, the val crops, val.txt and the first photos; parts b, c, ...
(one zip each: thousands of small files would each take whole disk blocks of a call's 64 MiB) hold the rest, at
most --part-size bytes each. Every part lists its own photos in its train.txt, so a part that did not arrive
costs its photos and nothing else; tools/gpu_train.sh trains on the parts that are there.

    python tools/training_keys.py --root ../shared/datasets --train photos:train photos-more photos-extra --val photos:val --out out/keys
    python tools/gpu_pack.py --keys out/keys --out .gpupack

--job packs for the colorize job's run instead (tools/gpu_e2e.sh): the model as above (model.keras) and the val
photos at full resolution as grey JPEGs, quality 95, as an archive holds them (photos/; ~6 MB for 200).
"""
import argparse
import io
import random
import sys
import zipfile
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from colorize_core.lab import MODEL_SIZE, centre_crop  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


def train_bytes(key: str) -> bytes:
    image = cv2.imread(str(ROOT / key), cv2.IMREAD_COLOR)
    return b"" if image is None else cv2.imencode(".webp", centre_crop(image, MODEL_SIZE), [cv2.IMWRITE_WEBP_QUALITY, 75])[1].tobytes()


def val_bytes(key: str) -> bytes:
    image = cv2.imread(str(ROOT / key), cv2.IMREAD_COLOR)
    return cv2.imencode(".jpg", centre_crop(image, MODEL_SIZE), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def half_model(src: Path, dst: Path) -> None:
    """A copy of the colorizer file `src` with its float32 weights stored as float16 (Keras casts them back on load)."""
    import h5py

    with zipfile.ZipFile(src) as z:
        config, metadata, weights = (z.read(n) for n in ("config.json", "metadata.json", "model.weights.h5"))
    out = io.BytesIO()
    with h5py.File(io.BytesIO(weights), "r") as f, h5py.File(out, "w") as g:
        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                target = g.require_group(name)
            else:
                data = obj[()]
                target = g.create_dataset(name, data=data.astype(np.float16) if data.dtype == np.float32 else data)
            target.attrs.update(obj.attrs)
        g.attrs.update(f.attrs)
        f.visititems(copy)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", config), z.writestr("metadata.json", metadata)
        z.writestr("model.weights.h5", out.getvalue())


def grey_bytes(key: str) -> bytes:
    """A photo as the job's input: full resolution, grey (an archive's black-and-white scan), JPEG quality 95."""
    image = cv2.imread(str(ROOT / key), cv2.IMREAD_GRAYSCALE)
    return b"" if image is None else cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def pack_job(val: list[str], model: Path, out: Path) -> None:
    """The colorize job's run (tools/gpu_e2e.sh): out/model.keras (float16 weights) and out/photos/ (grey JPEGs)."""
    (out / "photos").mkdir(parents=True, exist_ok=True)
    half_model(model, out / "model.keras")
    with Pool() as pool:
        for key, blob in zip(val, pool.map(grey_bytes, val, chunksize=16)):
            if blob:
                (out / "photos" / Path(key).with_suffix(".jpg").name).write_bytes(blob)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{len(list((out / 'photos').iterdir()))} grey photos and the model in {out}: {size / 2**20:.1f} MiB")


def zip_part(folder: Path) -> Path:
    """A part's folder as one stored (not compressed: WebP is compressed already) zip beside it."""
    archive = folder.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(folder.parent))
    return archive


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=Path, required=True, help="folder with train.txt and val.txt (tools/training_keys.py)")
    p.add_argument("--out", type=Path, default=Path(".gpupack"))
    p.add_argument("--model", type=Path, default=Path("models/colorizer.keras"), help="the model to start from")
    p.add_argument("--part-a", type=int, default=9_000_000,
                   help="bytes of photos in part a (sent with the wheels, the model and the val crops)")
    p.add_argument("--part-size", type=int, default=60_000_000, help="bytes in each further part (b, c, ...)")
    p.add_argument("--parts", type=int, default=4, help="parts at most, a included; photos beyond are left out")
    p.add_argument("--job", action="store_true", help="pack for tools/gpu_e2e.sh: the model and the val photos, grey")
    args = p.parse_args()
    if args.job:
        return pack_job((args.keys / "val.txt").read_text().split(), args.model, args.out)
    names = [chr(ord("a") + i) for i in range(args.parts)]
    for name in names:
        (args.out / name).mkdir(parents=True, exist_ok=True)
    half_model(args.model, args.out / "a" / "init.keras")
    train = (args.keys / "train.txt").read_text().split()
    val = (args.keys / "val.txt").read_text().split()
    random.Random(0).shuffle(train)  # every part a random mix of the sources
    with Pool() as pool:
        val_blobs = pool.map(val_bytes, val, chunksize=16)
        train_blobs = pool.imap(train_bytes, train, chunksize=32)
        room = {name: args.part_a if name == "a" else args.part_size for name in names}
        packed: dict[str, list[str]] = {name: [] for name in names}
        skipped = 0
        for key, blob in zip(train, train_blobs):
            part = next((name for name in names if room[name] >= len(blob) + 200), None)  # 200: its zip entry
            if not blob or part is None:
                skipped += 1
                continue
            path = args.out / part / Path(key).with_suffix(".webp")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
            room[part] -= len(blob) + 200
            packed[part].append(f"{part}/{Path(key).with_suffix('.webp')}")
    for key, blob in zip(val, val_blobs):
        path = args.out / "a" / "val" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    (args.out / "a" / "val.txt").write_text("\n".join(f"a/val/{key}" for key in val) + "\n")
    for name in names:
        (args.out / name / "train.txt").write_text("".join(f"{key}\n" for key in sorted(packed[name])))
        size = sum(f.stat().st_size for f in (args.out / name).rglob("*") if f.is_file())
        sent = f"{name}/ (a folder)" if name == "a" else zip_part(args.out / name).name
        print(f"part {sent}: {len(packed[name])} photos, {size / 2**20:.1f} MiB")
    print(f"{sum(map(len, packed.values()))} training photos packed ({skipped} left out: no room or unreadable), "
          f"{len(val)} val crops")


if __name__ == "__main__":
    main()
