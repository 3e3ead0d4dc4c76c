"""Key lists for training across several folders of photos: keys relative to a common root, for --input ROOT
--input-list (the same mechanism a user has for their own photos).

    python tools/training_keys.py --root ../shared/datasets --train photos:train photos-more --val photos:val --out runs/keys

Each SOURCE is FOLDER (every photo of FOLDER/MANIFEST.csv, column path) or FOLDER:SPLIT (its rows of that split).
Writes OUT/train.txt and OUT/val.txt, and refuses lists that share a photo.
"""
import argparse
import csv
from pathlib import Path


def keys(root: Path, source: str) -> list[str]:
    folder, _, split = source.partition(":")
    with open(root / folder / "MANIFEST.csv", newline="") as f:
        return [f"{folder}/{row['path']}" for row in csv.DictReader(f) if not split or row.get("split") == split]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--train", nargs="+", required=True, metavar="SOURCE")
    p.add_argument("--val", nargs="*", default=[], metavar="SOURCE")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    lists = {name: sorted({k for source in sources for k in keys(args.root, source)})
             for name, sources in (("train", args.train), ("val", args.val))}
    if set(lists["train"]) & set(lists["val"]):
        raise SystemExit("the train and val lists share photos: validation must be held out")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, names in lists.items():
        (args.out / f"{name}.txt").write_text("".join(k + "\n" for k in names))
        print(f"{args.out / f'{name}.txt'}: {len(names)} photos")


if __name__ == "__main__":
    main()
