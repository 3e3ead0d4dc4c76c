"""Object storage through pyarrow.fs: a local folder or s3://bucket/prefix, the same calls for both.

S3 credentials come from the standard AWS chain (environment, ~/.aws, instance profile); `endpoint`
(or AWS_ENDPOINT_URL) points at an S3-compatible server such as SeaweedFS or MinIO.
"""
import csv
import hashlib
import io
import os
import stat
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

from colorize_core.status import Status

# Listed as images; .gif too, so that a GIF gets a manifest row saying why it is not colorized.
TEMP_PREFIX = ".colorize-"  # write_atomic's temporary files: hidden, so listings pass over them
T = TypeVar("T")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif")
CHUNK = 10_000  # keys read at a time from a listing or an input list
DEFAULT_MAX_BYTES = 2 * 1024**3  # a larger input is refused unread (--max-bytes): a 150 MP 16-bit TIFF is 0.9 GB
WRITE_CHECK = ".colorize-write-check-"  # the tiny object written and removed before any work (check_writable)


class RefusedInput(ValueError):
    """An input the job will not read: not a regular file, a link leading outside the input, or too large."""


class StorageGone(OSError):
    """The storage stopped answering and did not come back within the driver's retries (retrying)."""


def within(path: str, root: str) -> bool:
    """Whether the path `path` is `root` or lies under it (both real paths: links resolved)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def printable_key(name: str) -> str:
    """A local file name as a key the manifest (UTF-8 Parquet) and S3 can hold: itself, or, for a name whose
    bytes are not UTF-8 (os.walk hands them over with surrogate escapes, e.g. Latin-1 names from an old volume),
    its bytes with \\x escapes, which stages.unsafe_key_reason then refuses with the reason."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


def retrying(call: Callable[[], T], attempts: int = 7, first_wait_s: float = 0.5) -> T:
    """`call()`, tried again on OSError (a storage server restarting or throttling) after waits that double:
    0.5 s up to 16 s, 31.5 s in all. For the driver's own few requests (the listing of what is done, the
    manifest's totals and marker), whose failure would otherwise lose a whole run's accounting."""
    for attempt in range(attempts):
        try:
            return call()
        except OSError as e:
            if attempt == attempts - 1:
                raise StorageGone(f"{type(e).__name__}: {e}") from e
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

    def bucket_and_key(self, key: str) -> tuple[str, str]:
        """On S3: the bucket, and `key` as the object's full key in it (the prefix before it)."""
        bucket, _, prefix = self.root.partition("/")
        return bucket, f"{prefix}/{key}" if prefix else key

    def __getstate__(self):  # the cached filesystem is rebuilt in each worker, not pickled
        return {"uri": self.uri, "endpoint": self.endpoint}

    def __setstate__(self, state):
        object.__setattr__(self, "uri", state["uri"])
        object.__setattr__(self, "endpoint", state["endpoint"])

    @cached_property
    def real_root(self) -> str:
        """A local folder's real path (its links resolved): what "inside the input" is measured against."""
        return os.path.realpath(self.root)

    def iter_keys(self, extensions: tuple[str, ...] | None = IMAGE_EXTENSIONS,
                  passed_over: Callable[[str, str, str], None] | None = None) -> Iterator[str]:
        """Every file under this location as a key relative to it, as the listing goes (on S3 a request per 1,000
        keys; never the whole listing in memory); only `extensions` unless None.

        Passed over, each told to `passed_over(key, status, reason)` if given (the job gives each a manifest row):
        hidden images (a name or folder starting with "."; our own temporary files are hidden and get no row),
        and in a local folder, linked folders that lead outside it (error) or back into a folder already listed
        (skipped), and folders that cannot be listed (error; key FOLDER/). Linked folders inside it are
        followed."""
        tell = passed_over if passed_over is not None else (lambda key, status, reason: None)
        found = self._iter_s3_keys() if self.is_s3 else self._iter_local_keys(tell)
        for key in found:
            if extensions is not None and not key.lower().endswith(extensions):
                continue
            if any(part.startswith(".") for part in key.split("/")):
                if not key.rsplit("/", 1)[-1].startswith(TEMP_PREFIX):  # our own temporary files: no row
                    tell(key, Status.SKIPPED, "hidden: its name or a folder's starts with '.' (e.g. macOS's ._ files)")
                continue
            yield key

    def _iter_s3_keys(self) -> Iterator[str]:
        bucket, _, prefix = self.root.partition("/")
        prefix = prefix + "/" if prefix else ""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return (o["Key"][len(prefix):] for page in pages for o in page.get("Contents", []))

    def _iter_local_keys(self, tell: Callable[[str, str, str], None]) -> Iterator[str]:
        seen = {self.real_root}

        def relative(path: str) -> str:
            return printable_key(os.path.relpath(path, self.root).replace(os.sep, "/"))

        def unlisted(error: OSError) -> None:
            tell(relative(error.filename) + "/", Status.ERROR, f"folder cannot be listed ({error.strerror or error}): "
                 "its images are not accounted for; fix its permissions and run again")

        for folder, subfolders, names in os.walk(self.root, onerror=unlisted, followlinks=True):
            # Real folders before links, each sorted: a folder reached both ways is listed under its own name.
            ordered = sorted(subfolders, key=lambda name: (os.path.islink(os.path.join(folder, name)), name))
            subfolders[:] = []
            for name in ordered:  # links to folders: followed only inside the input, each folder once
                path = os.path.join(folder, name)
                real = os.path.realpath(path)
                if os.path.islink(path) and not within(real, self.real_root):
                    tell(relative(path) + "/", Status.ERROR, f"a linked folder leading outside --input (to {real}): not followed")
                elif real in seen:
                    tell(relative(path) + "/", Status.SKIPPED, "a linked folder listed already by another path: not listed twice")
                else:
                    seen.add(real)
                    subfolders.append(name)
            for name in names:
                yield relative(os.path.join(folder, name))

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

    def read(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes: one GET on S3 (again if its body is cut off mid-stream). OSError if it cannot be
        read; RefusedInput, unread, if it is larger than `max_bytes` or, locally, not a regular file or a link
        leading outside this folder."""
        if self.is_s3:
            return self._read_s3(key, max_bytes)
        path = self.path(key)
        real = os.path.realpath(path)
        if not within(real, self.real_root):
            raise RefusedInput(f"a link leading outside {self.uri} (to {real}): not read")
        info = os.stat(real)
        if not stat.S_ISREG(info.st_mode):
            raise RefusedInput("not a regular file (a FIFO, device, socket or folder): not read")
        if max_bytes is not None and info.st_size > max_bytes:
            raise RefusedInput(f"{info.st_size:,} bytes is over the limit of {max_bytes:,} (--max-bytes): not read")
        with open(real, "rb") as f:
            return f.read()

    def sha256(self, key: str, chunk: int = 1 << 20) -> str:
        """The sha256 of the object at `key`, read a chunk at a time (memory flat whatever its size): for the
        fixity audit. FileNotFoundError if nothing is there, OSError if it cannot be read."""
        digest = hashlib.sha256()
        if self.is_s3:
            from botocore.exceptions import BotoCoreError, ClientError

            bucket, name = self.bucket_and_key(key)
            try:
                for part in self.s3.get_object(Bucket=bucket, Key=name)["Body"].iter_chunks(chunk):
                    digest.update(part)
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    raise FileNotFoundError(f"s3://{bucket}/{name}") from None
                raise OSError(f"cannot read s3://{bucket}/{name}: {e}") from None
            except BotoCoreError as e:
                raise OSError(f"cannot read s3://{bucket}/{name}: {e}") from None
        else:
            with open(self.path(key), "rb") as f:
                while part := f.read(chunk):
                    digest.update(part)
        return digest.hexdigest()

    def _read_s3(self, key: str, max_bytes: int | None, attempts: int = 5) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError, IncompleteReadError, ResponseStreamingError

        bucket, name = self.bucket_and_key(key)
        for attempt in range(attempts):
            try:
                response = self.s3.get_object(Bucket=bucket, Key=name)
                if max_bytes is not None and response["ContentLength"] > max_bytes:
                    response["Body"].close()
                    raise RefusedInput(f"{response['ContentLength']:,} bytes is over the limit of {max_bytes:,} "
                                       "(--max-bytes): not read")
                return response["Body"].read()  # botocore checks the length: a body cut short raises
            except (IncompleteReadError, ResponseStreamingError) as e:  # cut mid-stream: again, as for a 503
                if attempt == attempts - 1:
                    raise OSError(f"cannot read s3://{bucket}/{name}: the body was cut off {attempts} times ({e})")
                time.sleep(0.2 * 2**attempt)
            except (BotoCoreError, ClientError) as e:
                raise OSError(f"cannot read s3://{bucket}/{name}: {e}") from None
        raise AssertionError("unreachable")

    def write_atomic(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Write `data` at `key` so that the key never holds a partial file; on S3 with `content_type` if given
        (what a static website serves it as; else application/octet-stream).

        An S3 PUT of the whole body is atomic; a local file is written beside its final name and renamed.
        """
        path = self.path(key)
        if self.is_s3:
            headers = {"Content-Type": content_type} if content_type else None
            with self.fs.open_output_stream(path, metadata=headers) as f:
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

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Write `data` at `key` only if nothing is there (False if something is): O_EXCL locally, a conditional
        PUT (If-None-Match: *) on S3. For the run lock (run_lock.py)."""
        if self.is_s3:
            from botocore.exceptions import BotoCoreError, ClientError

            bucket, name = self.bucket_and_key(key)
            try:
                self.s3.put_object(Bucket=bucket, Key=name, Body=data, IfNoneMatch="*")
                return True
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return False
                raise OSError(f"cannot write s3://{bucket}/{name}: {e}") from None
            except BotoCoreError as e:
                raise OSError(f"cannot write s3://{bucket}/{name}: {e}") from None
        path = self.path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True

    def delete(self, key: str) -> None:
        """Remove the object at `key`; nothing if it is not there."""
        try:
            self.fs.delete_file(self.path(key))
        except FileNotFoundError:
            pass

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


    def probe(self) -> None:
        """One quick request, with no retries of its own: OSError if the storage does not answer now. The driver
        asks this (through `retrying`, which does the waiting) when a batch's rows show storage errors."""
        if not self.is_s3:
            os.stat(self.root)
            return
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        client = boto3.client("s3", endpoint_url=self.endpoint_url(), region_name=self.region(),
                              config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10))
        try:
            client.list_objects_v2(Bucket=self.root.split("/")[0], MaxKeys=1)
        except (BotoCoreError, ClientError) as e:
            raise OSError(f"{self.uri} does not answer: {e}") from None

    def check_writable(self, folders: tuple[str, ...] = ("",)) -> None:
        """Fail now, with a message that says what to do, if a tiny object cannot be written and removed in each
        of `folders` under this location (read-only keys, a read-only mount, a file where a folder should be)."""
        for folder in folders:
            key = f"{folder}/{WRITE_CHECK}{uuid.uuid4().hex}" if folder else f"{WRITE_CHECK}{uuid.uuid4().hex}"
            try:
                self.write_atomic(key, b"colorize write check")
                self.fs.delete_file(self.path(key))
            except OSError as e:
                raise SystemExit(f"cannot write under {self.uri}{'/' + folder if folder else ''}: {e}\n"
                                 "Check that the output is writable (permissions, a read-only mount, a file in the "
                                 "way of the folder) and, on S3, that the credentials may PUT and DELETE there.") from None


def csv_has_header(first_line: bytes) -> bool:
    """Whether a CSV key list's first line is a header: it is if one of its fields is `key`; otherwise it is the
    first key (a list written without a header must not lose its first key)."""
    fields = next(csv.reader([first_line.decode("utf-8", "replace")]), [])
    return "key" in (f.strip() for f in fields)


def iter_key_list(uri: str, endpoint: str | None = None, chunk: int = CHUNK) -> Iterator[list[str]]:
    """Keys from an input list, `chunk` at a time as the file is read (never all of it in memory): Parquet
    (column "key", else the first column), CSV (column "key" where the first line names one, else the first
    column of every line: csv_has_header) or a text file (a key a line). A key given twice is the list's
    business: pipeline.run does it once."""
    folder, name = uri.rsplit("/", 1) if "/" in uri else (".", uri)
    location = Location(folder, endpoint)
    with location.fs.open_input_file(location.path(name)) as f:
        if name.endswith((".parquet", ".csv")):
            if name.endswith(".parquet"):
                parquet = pq.ParquetFile(f)
                names = parquet.schema_arrow.names
                batches = parquet.iter_batches(batch_size=chunk, columns=["key" if "key" in names else names[0]])
            else:
                header = csv_has_header(f.read(1 << 16).split(b"\n", 1)[0])
                f.seek(0)
                batches = pacsv.open_csv(f, read_options=pacsv.ReadOptions(block_size=1 << 20,
                                                                           autogenerate_column_names=not header))
            for batch in batches:
                column = batch.column("key") if "key" in batch.schema.names else batch.column(0)
                keys = [str(k) for k in column.to_pylist() if k]
                for i in range(0, len(keys), chunk):
                    yield keys[i:i + chunk]
        else:
            keys = []
            for line in io.TextIOWrapper(f, encoding="utf-8", errors="surrogateescape"):
                if line.strip():
                    keys.append(printable_key(line.strip()))
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
    passed_over: Callable[[str, str, str], None] | None = None  # told what the listing passes over (iter_keys)

    def chunks(self) -> Iterator[list[str]]:
        """The keys, CHUNK at a time as they are read."""
        if self.input_list:
            yield from iter_key_list(self.input_list, self.endpoint, CHUNK)
            return
        keys = self.listing.iter_keys(self.extensions, self.passed_over)
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
