"""S3 requests a run makes, as the server saw them: the colorize job over N small scans on a local SeaweedFS,
through a counting proxy (tools.local_s3.RequestCounter), once fresh and once resumed with nothing left to do.

    python -m benchmarks.s3_requests --n 1000

The model is a tiny stand-in of the colorizer's shape (requests do not depend on it).
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

from benchmarks import ROOT, print_result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000, help="scans")
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args(argv)
    from colorize_core import runtime

    runtime.prepare_environment()
    import cv2
    import numpy as np

    from benchmarks.memory import tiny_model
    from jobs import colorize
    from tools.local_s3 import LocalS3, RequestCounter

    with tempfile.TemporaryDirectory() as tmp:
        server = LocalS3(Path(tmp) / "s3").start()
        os.environ.update(server.env())
        try:
            client = server.client()
            client.create_bucket(Bucket="archive")
            grey = cv2.resize(cv2.imread(str(ROOT / "examples" / "forest.jpg"), cv2.IMREAD_GRAYSCALE), (96, 64))
            for i in range(args.n):
                client.put_object(Bucket="archive", Key=f"scans/s{i:06d}.jpg",
                                  Body=cv2.imencode(".jpg", np.roll(grey, 7 * i, axis=1))[1].tobytes())
            model = str(tiny_model(Path(tmp) / "tiny.keras"))
            proxy = RequestCounter(server.endpoint).start()
            flags = ["--input", "s3://archive/scans", "--output", "s3://archive/colour", "--model", model,
                     "--s3-endpoint", proxy.endpoint, "--batch-size", str(args.batch_size)]
            figures = {}
            for run in ("fresh", "resumed"):
                assert colorize.main(flags) == 0
                figures[run] = proxy.take()
            proxy.stop()
        finally:
            server.stop()
    print(f"{args.n} scans, batch {args.batch_size}:")
    print("| run | GET | PUT | HEAD | LIST | POST | DELETE | all | per image |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run, counts in figures.items():
        total = sum(counts.values())
        print(f"| {run} | " + " | ".join(str(counts.get(k, 0)) for k in ("GET", "PUT", "HEAD", "LIST", "POST", "DELETE"))
              + f" | {total} | {total / args.n:.3f} |")
    return print_result("s3_requests", f"{args.n} scans batch {args.batch_size}: " + ", ".join(
        f"{run} {sum(counts.values())} requests ({sum(counts.values()) / args.n:.3f} an image)"
        for run, counts in figures.items()))


if __name__ == "__main__":
    sys.exit(main())
