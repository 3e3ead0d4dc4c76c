"""Object storage through pyarrow.fs: a local folder or s3://bucket/prefix, the same calls for both.

S3 credentials come from the standard AWS chain (environment, ~/.aws, instance profile); `endpoint`
(or AWS_ENDPOINT_URL) points at an S3-compatible server such as SeaweedFS or MinIO.
"""
import csv
import io
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar
from urllib.parse import urlparse

import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

# Listed as images; .gif too, so that a GIF gets a manifest row saying why it is not colorized.
TEMP_PREFIX = ".colorize-"  # write_atomic's temporary files: hidden, so listings pass over them
T = TypeVar("T")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif")
CHUNK = 10_000  # keys read at a time from a listing or an input list


def retrying(call: Callable[[], T], attempts: int = 7, first_wait_s: float = 0.5) -> T:
    """`call()`, tried again on OSError (a storage server restarting or throttling) after waits that double:
    0.5 s up to 16 s, 31.5 s in all. For the driver's own few requests (the listing of what is done, the
    manifest's totals and marker), whose failure would otherwise lose a whole run's accounting."""
    for attempt in range(attempts):
        try:
            return call()
        except OSError:
            if attempt == attempts - 1:
                raise
            time.sleep(first_wait_s * 2**attempt)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Location:
    """A folder or bucket prefix. Small and picklable: each Ray worker opens its own filesystem from it."""

    uri: str
    endpoint: str | None = None

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    def endpoint_url(self) -> str | None:
        """The S3 endpoint as a URL: this location's, else AWS_ENDPOINT_URL (the one place it is read)."""
        endpoint = self.endpoint or os.environ.get("AWS_ENDPOINT_URL")
        return endpoint if not endpoint or "://" in endpoint else f"http://{endpoint}"

    @staticmethod
    def region() -> str:
        return os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))

    @cached_property
    def fs(self) -> pafs.FileSystem:
        if not self.is_s3:
            return pafs.LocalFileSystem()
        kwargs = {"region": self.region()}
        if endpoint := self.endpoint_url():
            parsed = urlparse(endpoint)
            kwargs.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
        # Retry throttling and dropped connections with backoff rather than failing an image.
        kwargs["retry_strategy"] = pafs.AwsStandardS3RetryStrategy(max_attempts=5)
        # Requests are billed and throttled: open without a round trip of its own, so that a small object is
        # one PUT at close (not a multipart upload's three requests).
        kwargs["allow_delayed_open"] = True
        return pafs.S3FileSystem(**kwargs)

    @cached_property
    def root(self) -> str:
        """The path pyarrow uses: "bucket/prefix" for S3, an absolute path for a folder."""
        if self.is_s3:
            return self.uri[len("s3://"):].rstrip("/")
        return os.path.abspath(self.uri)

    def path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def __getstate__(self):  # the cached filesystem is rebuilt in each worker, not pickled
        return {"uri": self.uri, "endpoint": self.endpoint}

    def __setstate__(self, state):
        object.__setattr__(self, "uri", state["uri"])
        object.__setattr__(self, "endpoint", state["endpoint"])

    def iter_keys(self, extensions: tuple[str, ...] | None = IMAGE_EXTENSIONS) -> Iterator[str]:
        """Every file under this location as a key relative to it, as the listing goes (on S3 a request per 1,000
        keys; never the whole listing in memory); only `extensions` unless None; hidden files passed over."""
        if self.is_s3:
            bucket, _, prefix = self.root.partition("/")
            prefix = prefix + "/" if prefix else ""
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            found = (o["Key"][len(prefix):] for page in pages for o in page.get("Contents", []))
        else:
            found = (os.path.relpath(os.path.join(folder, name), self.root).replace(os.sep, "/")
                     for folder, _, names in os.walk(self.root) for name in names)
        for key in found:
            if any(part.startswith(".") for part in key.split("/")):
                continue  # hidden files and our own temporary files
            if extensions is None or key.lower().endswith(extensions):
                yield key

    def list_keys(self, extensions: tuple[str, ...] | None = IMAGE_EXTENSIONS) -> list[str]:
        """iter_keys as a sorted list, for a listing that fits in memory (training, evaluation)."""
        return sorted(self.iter_keys(extensions))

    def exists(self, key: str) -> bool:
        return self.fs.get_file_info(self.path(key)).type == pafs.FileType.File

    @cached_property
    def s3(self):
        """A boto3 client, for reads: one GET an object (pyarrow's open asks for its size first, a HEAD)."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint_url(), region_name=self.region(),
                            config=Config(retries={"max_attempts": 5, "mode": "standard"}))

    def read(self, key: str) -> bytes:
        """The object's bytes: one GET on S3. OSError if it cannot be read."""
        if self.is_s3:
            from botocore.exceptions import BotoCoreError, ClientError

            bucket, _, prefix = self.root.partition("/")
            try:
                return self.s3.get_object(Bucket=bucket, Key=f"{prefix}/{key}" if prefix else key)["Body"].read()
            except (BotoCoreError, ClientError) as e:
                raise OSError(f"cannot read s3://{bucket}/{prefix + '/' if prefix else ''}{key}: {e}") from None
        with self.fs.open_input_stream(self.path(key)) as f:
            return f.read()

    def write_atomic(self, key: str, data: bytes) -> None:
        """Write `data` at `key` so that the key never holds a partial file.

        An S3 PUT of the whole body is atomic; a local file is written beside its final name and renamed.
        """
        path = self.path(key)
        if self.is_s3:
            with self.fs.open_output_stream(path) as f:
                f.write(data)
            return
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f"{TEMP_PREFIX}{uuid.uuid4().hex}.tmp")  # short: a 250-byte name still fits
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def remove_stale_temp_files(self, older_than_s: float = 3600.0) -> int:
        """Remove the hidden temporary files (write_atomic's) that runs killed mid-write left behind: those
        older than `older_than_s`. A live run's temporary file lives for one write, seconds, so it is never
        touched. Only local folders have them (an S3 PUT is atomic); returns how many were removed."""
        if self.is_s3:
            return 0
        removed, cutoff = 0, time.time() - older_than_s
        for folder, _, names in os.walk(self.root):
            for name in names:
                path = os.path.join(folder, name)
                try:
                    if name.startswith(TEMP_PREFIX) and name.endswith(".tmp") and os.path.getmtime(path) < cutoff:
                        os.remove(path)
                        removed += 1
                except FileNotFoundError:  # renamed or removed by its own run meanwhile
                    pass
        return removed

    def check_access(self) -> None:
        """Fail now, with a message that says what to do, if the location cannot be read (e.g. bad credentials)."""
        try:
            self.fs.get_file_info(self.root)
            if self.is_s3:
                self.fs.get_file_info(pafs.FileSelector(self.root.split("/")[0], allow_not_found=True))
        except OSError as e:
            raise SystemExit(
                f"cannot access {self.uri}: {e}\n"
                "Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or your AWS profile), the bucket name, "
                "and --s3-endpoint / AWS_ENDPOINT_URL for S3-compatible servers."
            ) from None


def iter_key_list(uri: str, endpoint: str | None = None, chunk: int = CHUNK) -> Iterator[list[str]]:
    """Keys from an input list, `chunk` at a time as the file is read (never all of it in memory): Parquet or
    CSV (column "key", else the first column) or a text file (a key a line)."""
    folder, name = uri.rsplit("/", 1) if "/" in uri else (".", uri)
    location = Location(folder, endpoint)
    with location.fs.open_input_file(location.path(name)) as f:
        if name.endswith((".parquet", ".csv")):
            if name.endswith(".parquet"):
                parquet = pq.ParquetFile(f)
                names = parquet.schema_arrow.names
                batches = parquet.iter_batches(batch_size=chunk, columns=["key" if "key" in names else names[0]])
            else:
                batches = pacsv.open_csv(f, read_options=pacsv.ReadOptions(block_size=1 << 20))
            for batch in batches:
                column = batch.column("key") if "key" in batch.schema.names else batch.column(0)
                keys = [str(k) for k in column.to_pylist() if k]
                for i in range(0, len(keys), chunk):
                    yield keys[i:i + chunk]
        else:
            keys = []
            for line in io.TextIOWrapper(f, encoding="utf-8"):
                if line.strip():
                    keys.append(line.strip())
                if len(keys) == chunk:
                    yield keys
                    keys = []
            if keys:
                yield keys


def read_key_list(uri: str, endpoint: str | None = None) -> list[str]:
    """Every key of an input list (iter_key_list), for a list that fits in memory (training, evaluation)."""
    return [key for keys in iter_key_list(uri, endpoint) for key in keys]


@dataclass(frozen=True)
class KeySource:
    """Where the job's keys come from: the list file `input_list` (Parquet, CSV or text), else the images under
    `listing`; read a chunk at a time, never whole (pipeline.run takes them a wave at a time)."""

    listing: Location
    extensions: tuple[str, ...] | None = IMAGE_EXTENSIONS
    input_list: str | None = None
    endpoint: str | None = None  # the S3 endpoint of `input_list`

    def chunks(self) -> Iterator[list[str]]:
        """The keys, CHUNK at a time as they are read."""
        if self.input_list:
            yield from iter_key_list(self.input_list, self.endpoint, CHUNK)
            return
        keys = self.listing.iter_keys(self.extensions)
        while chunk := [key for _, key in zip(range(CHUNK), keys)]:
            yield chunk


def select_keys(source: Location, split: str | None = None, input_list: str | None = None, limit: int | None = None,
                extensions: tuple[str, ...] | None = IMAGE_EXTENSIONS) -> list[str]:
    """The photos a training or evaluation run takes from `source`, sorted: one split of SOURCE/MANIFEST.csv
    (columns path, split), or the keys of an input list (read_key_list), or every image under it; the first
    `limit` of them."""
    if split:
        with source.fs.open_input_stream(source.path("MANIFEST.csv")) as f:
            rows = csv.DictReader(f.read().decode("utf-8").splitlines())
            keys = sorted(r["path"] for r in rows if r["split"] == split)
    elif input_list:
        keys = sorted(read_key_list(input_list, source.endpoint))
    else:
        keys = source.list_keys(extensions)
    return keys[:limit] if limit else keys
