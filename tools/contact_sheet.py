"""Before | after pictures of colorize runs side by side in one JPEG, for the README and the model card: a row a
name, a column for --before and one for each --after folder (several models on the same photos).

    python tools/contact_sheet.py --before examples --after out/examples --out docs/examples.jpg boats.jpg castle.jpg
"""
import argparse
from pathlib import Path

import cv2
import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", type=Path, required=True)
    p.add_argument("--after", type=Path, nargs="+", required=True, help="one folder or more, a column each")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--height", type=int, default=240, help="height of each picture")
    p.add_argument("names", nargs="+")
    args = p.parse_args()
    rows, folders = [], (args.before, *args.after)
    for name in args.names:
        pictures = [cv2.imread(str(folder / name), cv2.IMREAD_COLOR) for folder in folders]
        missing = [str(folder / name) for folder, picture in zip(folders, pictures) if picture is None]
        if missing:
            raise SystemExit(f"cannot read {', '.join(missing)}")
        h, w = pictures[0].shape[:2]
        size = (round(w * args.height / h), args.height)
        gap = np.full((args.height, 8, 3), 255, np.uint8)
        columns = [cv2.resize(picture, size, interpolation=cv2.INTER_AREA) for picture in pictures]
        rows.append(np.hstack([part for column in columns for part in (column, gap)][:-1]))
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([np.pad(r, ((0, 8), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print("wrote", args.out, sheet.shape[1], "x", sheet.shape[0])


if __name__ == "__main__":
    main()
