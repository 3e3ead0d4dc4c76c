"""Before | after pairs of a colorize run side by side in one JPEG, for the README and the model card.

    python tools/contact_sheet.py --before examples --after out/examples --out docs/examples.jpg boats.jpg castle.jpg
"""
import argparse
from pathlib import Path

import cv2
import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", type=Path, required=True)
    p.add_argument("--after", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--height", type=int, default=240, help="height of each picture")
    p.add_argument("names", nargs="+")
    args = p.parse_args()
    rows = []
    for name in args.names:
        pair = [cv2.imread(str(folder / name), cv2.IMREAD_COLOR) for folder in (args.before, args.after)]
        h, w = pair[0].shape[:2]
        size = (round(w * args.height / h), args.height)
        rows.append(np.hstack([cv2.resize(pair[0], size, interpolation=cv2.INTER_AREA), np.full((args.height, 8, 3), 255, np.uint8),
                               cv2.resize(pair[1], size, interpolation=cv2.INTER_AREA)]))
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([np.pad(r, ((0, 8), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print("wrote", args.out, sheet.shape[1], "x", sheet.shape[0])


if __name__ == "__main__":
    main()
