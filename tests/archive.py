"""An archive for the colorize job's tests: input and output prefixes in a local folder or on the S3 server, and
a way to run the job on it and read its manifest."""
import os
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from colorize_core.storage import Location
from jobs import colorize


@dataclass
class Archive:
    """An input and an output prefix on one kind of storage, and a way to look at them from outside the job."""

    input: str
    output: str
    put: Callable[[str, bytes], None]
    get: Callable[[str], bytes]
    stamp: Callable[[str], object]  # changes whenever the object at a key is rewritten


def make_archive(kind: str, tmp_path, s3_server, name: str, inputs: dict[str, bytes]) -> Archive:
    """An Archive of `kind` ("local" or "s3", a bucket named after `name`) holding `inputs` (key -> bytes)."""
    if kind == "local":
        def put(key, data):
            path = tmp_path / "scans" / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        store = Archive(str(tmp_path / "scans"), str(tmp_path / "colour"), put,
                        lambda key: (tmp_path / "colour" / key).read_bytes(),
                        lambda key: os.stat(tmp_path / "colour" / key).st_mtime_ns)
    else:
        client = s3_server.client()
        bucket = "".join(c if c.isalnum() else "-" for c in f"archive-{name}".lower())[:40].strip("-")
        client.create_bucket(Bucket=bucket)
        store = Archive(f"s3://{bucket}/scans", f"s3://{bucket}/colour",
                        lambda key, data: client.put_object(Bucket=bucket, Key=f"scans/{key}", Body=data),
                        lambda key: client.get_object(Bucket=bucket, Key=f"colour/{key}")["Body"].read(),
                        lambda key: client.head_object(Bucket=bucket, Key=f"colour/{key}")["ETag"]
                        + str(client.head_object(Bucket=bucket, Key=f"colour/{key}")["LastModified"]))
    for key, data in inputs.items():
        store.put(key, data)
    return store


def run_job(archive: Archive, model_file, *extra: str) -> tuple[int, dict[str, dict]]:
    """Run the job in this process (a local Ray, started once); returns its exit code and manifest rows by key."""
    before = set(manifest_runs(archive))
    code = colorize.main(["--input", archive.input, "--output", archive.output, "--model", str(model_file),
                          "--batch-size", "4", *extra])
    (run,) = set(manifest_runs(archive)) - before
    output = Location(archive.output)
    table = pads.dataset(output.path(f"_manifest/{run}"), filesystem=output.fs, format="parquet").to_table()
    rows = table.to_pylist()
    by_key = {row["key"]: row for row in rows}
    assert len(by_key) == len(rows), "one manifest row per input, no duplicates"
    return code, by_key


def manifest_runs(archive: Archive) -> list[str]:
    output = Location(archive.output)
    infos = output.fs.get_file_info(pafs.FileSelector(output.path("_manifest"), allow_not_found=True))
    return [info.base_name for info in infos if info.type == pafs.FileType.Directory]


def decode_any(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
