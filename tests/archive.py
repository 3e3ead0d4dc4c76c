"""An archive for the colorize job's tests: input and output prefixes in a local folder or on the S3 server, and
a way to run the job on it and read its manifest."""
import math
import os
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pytest

from colorize_core import manifest
from colorize_core.lab import bgr_to_lab
from colorize_core.model_file import inspect_model_file
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
    content_type: Callable[[str], str | None]  # what S3 serves an output as (None: a local file has none)


def make_archive(kind: str, tmp_path, s3_server, name: str, inputs: dict[str, bytes]) -> Archive:
    """An Archive of `kind` ("local" or "s3", a bucket named after `name`) holding `inputs` (key -> bytes)."""
    if kind == "local":
        def put(key, data):
            path = tmp_path / "scans" / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        store = Archive(str(tmp_path / "scans"), str(tmp_path / "colour"), put,
                        lambda key: (tmp_path / "colour" / key).read_bytes(),
                        lambda key: os.stat(tmp_path / "colour" / key).st_mtime_ns, lambda key: None)
    else:
        client = s3_server.client()
        bucket = "".join(c if c.isalnum() else "-" for c in f"archive-{name}".lower())[:40].strip("-")
        client.create_bucket(Bucket=bucket)
        store = Archive(f"s3://{bucket}/scans", f"s3://{bucket}/colour",
                        lambda key, data: client.put_object(Bucket=bucket, Key=f"scans/{key}", Body=data),
                        lambda key: client.get_object(Bucket=bucket, Key=f"colour/{key}")["Body"].read(),
                        lambda key: client.head_object(Bucket=bucket, Key=f"colour/{key}")["ETag"]
                        + str(client.head_object(Bucket=bucket, Key=f"colour/{key}")["LastModified"]),
                        lambda key: client.head_object(Bucket=bucket, Key=f"colour/{key}")["ContentType"])
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
    dataset = pads.dataset(output.path(f"_manifest/{run}"), filesystem=output.fs, format="parquet")
    for fragment in dataset.get_fragments():  # every file of the run carries the declared schema, not an inferred one
        assert fragment.physical_schema.remove_metadata() == manifest.SCHEMA, fragment.path
    table = dataset.to_table()
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


def assert_knobs_work(archive, inputs, model, temperature: float | None, gain: float) -> None:
    """The job at the model's defaults, then with the knobs turned: each row records them; the gain scales
    chroma; the classification head's confidence is in [0, 1]."""
    facts = inspect_model_file(str(model))
    code, default_rows = run_job(archive, model)
    assert code == 0 and all(r["status"] == "ok" for r in default_rows.values())
    knobs = ["--chroma-gain", str(gain), "--overwrite"] + (["--temperature", str(temperature)] if temperature else [])
    chroma_default = {k: np.hypot(*bgr_to_lab(decode_any(archive.get(k)))[..., 1:].transpose(2, 0, 1)).mean()
                      for k in inputs}
    code, rows = run_job(archive, model, *knobs)
    assert code == 0 and all(r["status"] == "ok" for r in rows.values())
    for key, row in rows.items():
        assert row["chroma_gain"] == pytest.approx(gain) and default_rows[key]["chroma_gain"] == facts.chroma_gain
        out = bgr_to_lab(decode_any(archive.get(key)))
        assert np.abs(out[..., 0] - bgr_to_lab(decode_any(inputs[key]))[..., 0]).mean() < 2.0, "L kept"
        if facts.head == "classification":
            assert default_rows[key]["temperature"] == pytest.approx(facts.temperature)
            assert row["temperature"] == pytest.approx(temperature)
            assert 0 <= row["colour_confidence"] <= 1 and row["colour_confidence"] == pytest.approx(
                default_rows[key]["colour_confidence"], abs=0.2)
        else:
            assert math.isnan(row["temperature"]) and math.isnan(row["colour_confidence"])
            chroma = np.hypot(out[..., 1], out[..., 2]).mean()  # gamut limits strong colour: compare, not scale
            # Lower, by no fixed margin: a briefly trained model may predict colour so strong that the gamut holds
            # both runs near its edge (boats.jpg once came out less than 1 apart, with a margin of 1 asked for).
            if gain < facts.chroma_gain:
                assert chroma < chroma_default[key], (key, chroma, chroma_default[key], facts.chroma_gain)
            else:
                assert chroma >= chroma_default[key] - 1, key
