"""Nothing lost, whatever the job is given (issue 29): no output lands on an original, one bad file never stops a
run, every input gets a row or a stated reason, and a second run into the same output waits its turn."""
import json
import os
import threading
import time

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from colorize_core import manifest, run_lock
from colorize_core.storage import Location
from jobs import colorize
from tools.local_s3 import LocalS3, RequestCounter
from tests import malformed
from tests.archive import decode_any, make_archive, manifest_runs, run_job
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.integration


def jpeg(seed: int = 0, width: int = 64, height: int = 48) -> bytes:
    grey = cv2.imread(str(EXAMPLES / "boats.jpg"), cv2.IMREAD_GRAYSCALE)
    return cv2.imencode(".jpg", cv2.resize(np.roll(grey, 30 * seed, axis=1), (width, height)))[1].tobytes()


def job(archive_or_input, output, model_file, *extra) -> int:
    return colorize.main(["--input", str(archive_or_input), "--output", str(output), "--model", str(model_file),
                          "--batch-size", "4", *extra])


def originals_of(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- 1. no output on an original, through links ---------------------------------------------------------------

def test_an_output_that_is_the_input_through_a_link_is_refused(tmp_path, model_file):
    archive = make_archive("local", tmp_path, None, "link", {f"p{i}.jpg": jpeg(i) for i in range(6)})
    scans = tmp_path / "scans"
    before = originals_of(scans)
    (tmp_path / "link").symlink_to(scans)  # ln -s ORIG LINK
    (tmp_path / "up").symlink_to(tmp_path)  # a link to the folder that holds the input
    for output, extra in [(tmp_path / "link", ["--overwrite"]), (tmp_path / "link", []),
                          (tmp_path / "link" / "colour", []), (tmp_path / "up", [])]:
        with pytest.raises(SystemExit, match="must not be --input or inside it, nor contain it"):
            job(archive.input, output, model_file, *extra)
    assert originals_of(scans) == before, "every original as it was"


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_key_whose_output_would_land_in_the_input_through_a_link_is_refused(tmp_path, model_file, overwrite):
    archive = make_archive("local", tmp_path, None, "inner-link", {"sub/a.jpg": jpeg(1), "b.jpg": jpeg(2)})
    scans, colour = tmp_path / "scans", tmp_path / "colour"
    colour.mkdir()
    (colour / "sub").symlink_to(scans / "sub")  # colour/sub/a.jpg is scans/sub/a.jpg
    before = originals_of(scans)
    code, rows = run_job(archive, model_file, "--max-error-fraction", "1", *overwrite)
    assert rows["b.jpg"]["status"] == "ok"
    assert rows["sub/a.jpg"]["status"] == "error" and "would land inside --input" in rows["sub/a.jpg"]["error"]
    assert originals_of(scans) == before, "the original under the link is untouched"


# --- 2. one malformed file is one error row -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["local", "s3"])
def test_malformed_files_become_error_rows_and_the_run_goes_on(tmp_path, s3_server, model_file, kind):
    bad = {"huge-canvas.webp": malformed.webp_huge_canvas()}  # OpenCV raises its own error on the canvas
    good = {f"good-{i}.jpg": jpeg(i) for i in range(4)} | {
        # An Orientation without a number reads as upright; the output gets a fresh one.
        "orientation-count-0.jpg": malformed.jpeg_orientation_count_zero(),
        "orientation-undefined.jpg": malformed.jpeg_orientation_undefined(),
        "top-down.bmp": malformed.bmp_top_down()}
    archive = make_archive(kind, tmp_path, s3_server, f"malformed-{kind}", bad | good)
    code, rows = run_job(archive, model_file, "--max-error-fraction", "1")
    assert code == 0 and sorted(rows) == sorted(bad | good), "a row for every input: the run did not stop"
    assert all(rows[k]["status"] == "ok" for k in good), {k: rows[k]["error"] for k in good}
    assert rows["huge-canvas.webp"]["status"] == "error" and "corrupt webp file" in rows["huge-canvas.webp"]["error"]
    assert (rows["top-down.bmp"]["width"], rows["top-down.bmp"]["height"]) == (96, 64)
    assert decode_any(archive.get("top-down.bmp")).shape == (64, 96, 3), "a top-down BMP colorized at its size"
    for key in ("orientation-count-0.jpg", "orientation-undefined.jpg"):
        assert decode_any(archive.get(key)).shape == (64, 96, 3), key
    code, again = run_job(archive, model_file, "--max-error-fraction", "1")  # and the rerun too
    assert sorted(again) == sorted(rows) and all(again[k]["status"] == "skipped" for k in good)


# --- 3. --max-pixels from the header, TIFF too ------------------------------------------------------------------

def test_the_pixel_limit_holds_for_tiff_as_for_png(tmp_path, model_file):
    grey = cv2.resize(cv2.imread(str(EXAMPLES / "castle.jpg"), cv2.IMREAD_GRAYSCALE), (128, 64))
    inputs = {"big.png": cv2.imencode(".png", grey)[1].tobytes(), "big.tif": cv2.imencode(".tif", grey)[1].tobytes(),
              "big-zlib.tif": cv2.imencode(".tif", grey, [cv2.IMWRITE_TIFF_COMPRESSION, 8])[1].tobytes(),
              "small.tif": cv2.imencode(".tif", grey[:32, :32])[1].tobytes()}
    archive = make_archive("local", tmp_path, None, "tiff-limit", inputs)
    code, rows = run_job(archive, model_file, "--max-pixels", "5000", "--max-error-fraction", "1")
    for key in ("big.png", "big.tif", "big-zlib.tif"):
        assert rows[key]["status"] == "error" and "128 x 64 pixels is over the limit of 5,000" in rows[key]["error"], \
            (key, rows[key]["error"])
    assert rows["small.tif"]["status"] == "ok"


# --- 4. a file name that is not UTF-8 ---------------------------------------------------------------------------

def test_a_file_name_that_is_not_utf8_gets_an_error_row(tmp_path, model_file):
    archive = make_archive("local", tmp_path, None, "latin1", {"fine.jpg": jpeg()})
    latin1 = os.path.join(os.fsencode(tmp_path / "scans"), b"caf\xe9.jpg")
    with open(latin1, "wb") as f:
        f.write(jpeg(3))
    for _ in range(2):  # and again: a rerun does not crash either
        code, rows = run_job(archive, model_file, "--max-error-fraction", "1")
        assert sorted(rows) == ["caf\\xe9.jpg", "fine.jpg"]
        assert rows["caf\\xe9.jpg"]["status"] == "error" and "not UTF-8" in rows["caf\\xe9.jpg"]["error"]
    assert open(latin1, "rb").read() == jpeg(3)


# --- 5. a write check before any work ---------------------------------------------------------------------------

def test_an_output_that_cannot_be_written_stops_the_job_before_any_work(tmp_path, s3_server, model_file, monkeypatch):
    archive = make_archive("local", tmp_path, None, "unwritable", {"a.jpg": jpeg()})
    in_the_way = tmp_path / "colour"
    in_the_way.write_bytes(b"a file where the output folder should be")
    start = time.monotonic()
    with pytest.raises(SystemExit, match="cannot write under"):
        job(archive.input, in_the_way, model_file)
    assert time.monotonic() - start < 10, "stopped before starting Ray or reading an image"

    s3 = make_archive("s3", tmp_path / "s3", s3_server, "read-only", {"a.jpg": jpeg()})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.read_only_env()["AWS_ACCESS_KEY_ID"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.read_only_env()["AWS_SECRET_ACCESS_KEY"])
    with pytest.raises(SystemExit, match="(?s)cannot write under s3://.*credentials may PUT"):
        job(s3.input, s3.output, model_file)
    listed = s3_server.client().list_objects_v2(Bucket=s3.output.split("/")[2], Prefix="colour/").get("Contents", [])
    assert not [o["Key"] for o in listed if not o["Key"].endswith("/")], "nothing written"


# --- 6. only regular files inside the input, up to --max-bytes --------------------------------------------------

def test_local_inputs_are_regular_files_inside_the_input(tmp_path, model_file):
    archive = make_archive("local", tmp_path, None, "files", {"fine.jpg": jpeg(), "sub/real.jpg": jpeg(1)})
    scans = tmp_path / "scans"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "photo.jpg").write_bytes(jpeg(2))
    os.mkfifo(scans / "fifo.jpg")  # would block a reader for ever
    (scans / "zero.jpg").symlink_to("/dev/zero")  # would read without end
    (scans / "hostname.jpg").symlink_to("/etc/hostname")  # would publish a system file
    (scans / "outside.jpg").symlink_to(elsewhere / "photo.jpg")
    (scans / "inside.jpg").symlink_to(scans / "sub" / "real.jpg")  # a link inside the input is fine
    noise = np.random.default_rng(0).integers(0, 255, (300, 300), np.uint8)
    (scans / "big.png").write_bytes(cv2.imencode(".png", noise)[1].tobytes())  # ~90 KB
    code, rows = run_job(archive, model_file, "--max-bytes", "50000", "--max-error-fraction", "1")
    assert {k for k, r in rows.items() if r["status"] == "ok"} == {"fine.jpg", "sub/real.jpg", "inside.jpg"}
    assert "not a regular file" in rows["fifo.jpg"]["error"]
    for key in ("zero.jpg", "hostname.jpg", "outside.jpg"):
        assert rows[key]["status"] == "error" and "a link leading outside" in rows[key]["error"], rows[key]
    assert "over the limit of 50,000 (--max-bytes)" in rows["big.png"]["error"]
    assert sorted(p.name for p in (tmp_path / "colour").glob("*.*")) == ["fine.jpg", "inside.jpg"]


def test_an_s3_object_over_max_bytes_is_refused_unread(tmp_path, s3_server, model_file):
    noise = np.random.default_rng(0).integers(0, 255, (300, 300), np.uint8)
    archive = make_archive("s3", tmp_path, s3_server, "max-bytes", {
        "fine.jpg": jpeg(), "big.png": cv2.imencode(".png", noise)[1].tobytes()})
    code, rows = run_job(archive, model_file, "--max-bytes", "50000", "--max-error-fraction", "1")
    assert rows["fine.jpg"]["status"] == "ok" and "(--max-bytes): not read" in rows["big.png"]["error"]


# --- 7. S3 gone for good ----------------------------------------------------------------------------------------

def test_storage_gone_for_good_ends_with_a_message_and_a_rerun_resumes(tmp_path, s3_server, model_file, capsys):
    server = LocalS3(tmp_path / "server", access_key=s3_server.access_key, secret_key=s3_server.secret_key).start()
    try:
        client = server.client()
        client.create_bucket(Bucket="gone")
        images = {f"scan-{i:02d}.jpg": jpeg(i) for i in range(40)}
        for key, data in images.items():
            client.put_object(Bucket="gone", Key=f"scans/{key}", Body=data)

        def outputs() -> set[str]:
            listed = client.list_objects_v2(Bucket="gone", Prefix="colour/").get("Contents", [])
            return {o["Key"][len("colour/"):] for o in listed if o["Key"].endswith(".jpg")}

        def stop_when_some_are_written():
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and len(outputs()) < 2:
                time.sleep(0.2)
            server.stop()

        watcher = threading.Thread(target=stop_when_some_are_written, daemon=True)
        watcher.start()
        code = job("s3://gone/scans", "s3://gone/colour", model_file, "--batch-size", "2", "--s3-endpoint",
                   server.endpoint)
        watcher.join()
        printed = capsys.readouterr()
        assert code == colorize.EXIT_STORAGE_GONE, printed
        assert "the storage went away" in printed.err and "run the same command again: it resumes" in printed.err
        saved = printed.err.split("are saved in ")[1].split()[0]
        assert set(pq.read_table(saved).column("key").to_pylist()) <= set(images), "the rows it had are kept"

        server.start()
        written = outputs()
        assert 0 < len(written) < len(images)
        output = Location("s3://gone/colour", server.endpoint)
        assert manifest.runs(output)[0] == [], "not marked complete"
        for key in written:
            assert decode_any(client.get_object(Bucket="gone", Key=f"colour/{key}")["Body"].read()) is not None
        code = job("s3://gone/scans", "s3://gone/colour", model_file, "--s3-endpoint", server.endpoint)
        assert code == 0 and outputs() == set(images)
        table, _ = manifest.read_all(output)
        statuses = dict(zip(table.column("key").to_pylist(), table.column("status").to_pylist()))
        assert {k for k, s in statuses.items() if s == "skipped"} == written, "what was written is not redone"
    finally:
        server.stop()


# --- 8. S3 bodies cut mid-stream are retried --------------------------------------------------------------------

def test_s3_bodies_cut_off_mid_stream_are_read_again(tmp_path, s3_server, model_file):
    images = {f"scan-{i:02d}.jpg": jpeg(i) for i in range(40)}
    archive = make_archive("s3", tmp_path, s3_server, "cut-bodies", images)
    proxy = RequestCounter(s3_server.endpoint, cut_fraction=0.3, cut_path="/scans/", seed=1).start()
    try:
        code, rows = run_job(archive, model_file, "--s3-endpoint", proxy.endpoint)
        cuts = proxy.take().get("CUT", 0)
    finally:
        proxy.stop()
    assert cuts >= 5, f"only {cuts} bodies were cut"
    assert code == 0 and all(r["status"] == "ok" for r in rows.values()), \
        {k: r["error"] for k, r in rows.items() if r["error"]}


# --- 9-11. every input accounted for ----------------------------------------------------------------------------

@pytest.mark.parametrize("header", ["", "key,note\n"])
def test_a_csv_key_list_with_or_without_a_header_loses_no_key(tmp_path, model_file, capsys, header):
    archive = make_archive("local", tmp_path, None, "csv", {f"{c}.jpg": jpeg(i) for i, c in enumerate("abc")})
    listing = tmp_path / "keys.csv"
    listing.write_text(header + "".join(f"{c}.jpg,{'x' if header else ''}\n" for c in "abc"))
    code, rows = run_job(archive, model_file, "--input-list", str(listing))
    assert code == 0 and sorted(rows) == ["a.jpg", "b.jpg", "c.jpg"]
    said = capsys.readouterr().out
    assert ("read as the header" if header else "so it has no header") in said


def test_a_key_given_twice_is_done_once(tmp_path, model_file, capsys):
    archive = make_archive("local", tmp_path, None, "twice", {"a.jpg": jpeg(1), "b.jpg": jpeg(2)})
    listing = tmp_path / "keys.txt"
    listing.write_text("a.jpg\nb.jpg\na.jpg\na.jpg\n")
    code, rows = run_job(archive, model_file, "--input-list", str(listing))
    assert code == 0 and sorted(rows) == ["a.jpg", "b.jpg"] and all(r["status"] == "ok" for r in rows.values())
    assert "2 keys were given more than once" in capsys.readouterr().out


def test_what_the_listing_passes_over_gets_a_row_with_its_reason(tmp_path, model_file):
    archive = make_archive("local", tmp_path, None, "passed", {
        "a.jpg": jpeg(1), "sub/b.jpg": jpeg(2), ".hidden.jpg": jpeg(3), "._a.jpg": b"\0\5\26\7 AppleDouble",
        ".thumbs/t.jpg": jpeg(4)})
    scans, elsewhere = tmp_path / "scans", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.jpg").write_bytes(jpeg(5))
    (scans / "linked").symlink_to(scans / "sub")  # inside: its folder is listed once, under its own name
    (scans / "away").symlink_to(elsewhere)  # outside: not followed
    (scans / "loop").symlink_to(scans)  # back to the top: not listed twice
    code, rows = run_job(archive, model_file, "--max-error-fraction", "1")
    assert {k for k, r in rows.items() if r["status"] == "ok"} == {"a.jpg", "sub/b.jpg"}
    for key in (".hidden.jpg", "._a.jpg", ".thumbs/t.jpg"):
        assert rows[key]["status"] == "skipped" and "hidden" in rows[key]["error"], key
    assert rows["linked/"]["status"] == "skipped" and "listed already" in rows["linked/"]["error"]
    assert rows["loop/"]["status"] == "skipped" and "listed already" in rows["loop/"]["error"]
    assert rows["away/"]["status"] == "error" and "leading outside --input" in rows["away/"]["error"]
    assert not (tmp_path / "colour" / ".hidden.jpg").exists()


def test_a_folder_that_cannot_be_listed_gets_an_error_row(tmp_path):
    """Run as nobody in a child (root reads every folder): the listing tells what it could not list."""
    import tempfile

    top = tempfile.mkdtemp(prefix="colorize-unlisted-")
    os.chmod(top, 0o755)
    os.makedirs(os.path.join(top, "open"))
    os.makedirs(os.path.join(top, "locked"))
    for name in ("open/a.jpg", "locked/b.jpg", "c.jpg"):
        with open(os.path.join(top, name), "wb") as f:
            f.write(b"x")
    os.chmod(os.path.join(top, "open"), 0o755)
    os.chmod(os.path.join(top, "locked"), 0)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: list as another user, report, and leave without running pytest's exit
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            passed = []
            keys = list(Location(top).iter_keys(passed_over=lambda *told: passed.append(told)))
            os.write(write, json.dumps([keys, passed]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        keys, passed = json.loads(f.read())
    os.waitpid(pid, 0)
    os.chmod(os.path.join(top, "locked"), 0o755)
    assert sorted(keys) == ["c.jpg", "open/a.jpg"]
    assert [p[:2] for p in passed] == [["locked/", "error"]] and "cannot be listed" in passed[0][2]


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_keys_under_the_outputs_own_folder_are_refused(tmp_path, s3_server, model_file, kind):
    archive = make_archive(kind, tmp_path, s3_server, f"reserved-{kind}", {
        "a.jpg": jpeg(1), "_manifest/x.jpg": jpeg(2), "_manifest/run=1/y.jpg": jpeg(3)})
    code, rows = run_job(archive, model_file, "--max-error-fraction", "1")
    assert rows["a.jpg"]["status"] == "ok"
    for key in ("_manifest/x.jpg", "_manifest/run=1/y.jpg"):
        assert rows[key]["status"] == "error" and "output's own folder" in rows[key]["error"], rows[key]
    table, incomplete = manifest.read_all(Location(archive.output))
    assert table.num_rows == 3 and incomplete == 0


# --- 12. one run at a time into an output ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_live_lock_stops_a_second_run_and_a_stale_one_is_taken_over(tmp_path, s3_server, model_file, kind, capsys):
    archive = make_archive(kind, tmp_path, s3_server, f"lock-{kind}", {"a.jpg": jpeg(1), "b.jpg": jpeg(2)})
    output = Location(archive.output)
    live = {"run_id": "20260101T000000000000Z", "host": "elsewhere", "pid": 1, "heartbeat": time.time() - 10}
    output.write_atomic(run_lock.KEY, json.dumps(live).encode())
    with pytest.raises(SystemExit, match="another run is writing into .*run 20260101T000000000000Z"):
        job(archive.input, archive.output, model_file)
    assert manifest_runs(archive) == [], "refused before any work"

    stale = {**live, "heartbeat": time.time() - run_lock.STALE_S - 60}
    output.write_atomic(run_lock.KEY, json.dumps(stale).encode())
    code, rows = run_job(archive, model_file)
    assert code == 0 and all(r["status"] == "ok" for r in rows.values())
    assert "took over the stale lock of run 20260101T000000000000Z" in capsys.readouterr().out
    assert not output.exists(run_lock.KEY), "released at the end"


def test_two_runs_started_at_once_into_one_output(tmp_path, model_file):
    inputs = {f"p{i}.jpg": jpeg(i) for i in range(8)}
    archive = make_archive("local", tmp_path, None, "together", inputs)
    ended = []

    def run():
        try:
            ended.append(job(archive.input, archive.output, model_file, "--batch-size", "2",
                             "--cpus-per-actor", "0.5"))  # leaves a CPU to the tasks
        except SystemExit as e:
            ended.append(str(e))

    runs = [threading.Thread(target=run) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join()
    assert 0 in ended and any(isinstance(e, str) and "another run is writing" in e for e in ended), ended
    (folder,) = manifest_runs(archive)  # one run did the work
    table, _ = manifest.read_all(Location(archive.output))
    assert sorted(table.column("key").to_pylist()) == sorted(inputs) and set(table.column("status").to_pylist()) == {"ok"}
    for key in inputs:
        assert decode_any(archive.get(key)).shape == (48, 64, 3), "every output whole"


# --- smaller ------------------------------------------------------------------------------------------------------

def test_a_broken_model_file_is_refused_before_any_work_saying_what_is_wrong(tmp_path, model_file):
    import keras

    archive = make_archive("local", tmp_path, None, "models", {"a.jpg": jpeg()})
    data = model_file.read_bytes()
    (tmp_path / "truncated.keras").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[len(data) // 2] ^= 0xFF
    (tmp_path / "corrupt.keras").write_bytes(bytes(corrupt))
    inputs = keras.Input((224, 224, 3))
    keras.Model(inputs, keras.layers.Conv2D(2, 1, name="ab")(inputs)).save(tmp_path / "rgb-in.keras")
    for name, message in [("truncated.keras", "truncated or corrupt .keras file"),
                          ("corrupt.keras", "fails its checksum"), ("rgb-in.keras", "not a colorizer: its input")]:
        with pytest.raises(SystemExit, match=message):
            job(archive.input, tmp_path / f"out-{name}", tmp_path / name)
        assert not (tmp_path / f"out-{name}").exists(), "stopped before any work"


@pytest.mark.parametrize("flags, named", [
    (["--input", "s3:///x"], "--input s3:///x: no bucket name"),
    (["--cpus-per-actor", "-1"], "--cpus-per-actor must be 0 or more"),
    (["--input-list", "/nonexistent/keys.txt"], "--input-list /nonexistent/keys.txt: no such file"),
    (["--skip-colour", "nan"], "--skip-colour must be a number"),
])
def test_wrong_flags_exit_2_naming_the_flag(tmp_path, capsys, flags, named):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(jpeg())
    argv = {"--input": str(tmp_path / "in"), "--output": str(tmp_path / "out")}
    for flag, value in zip(flags[::2], flags[1::2]):
        argv[flag] = value
    with pytest.raises(SystemExit) as stopped:
        colorize.main([item for pair in argv.items() for item in pair])
    assert stopped.value.code == 2 and named in capsys.readouterr().err


def test_a_manifest_that_does_not_account_for_every_input_exits_2(tmp_path, model_file, monkeypatch, capsys):
    monkeypatch.setattr(manifest, "ROWS_PER_FILE", 2)  # files written as the run goes, so one can be taken away
    archive = make_archive("local", tmp_path, None, "unaccounted", {f"p{i}.jpg": jpeg(i) for i in range(12)})
    removed = []

    def remove_the_first_manifest_file():  # an operator's clean-up script, say, at the wrong moment
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not removed:
            for path in (tmp_path / "colour" / "_manifest").rglob("*.parquet"):
                path.unlink()
                removed.append(path)
                break
            time.sleep(0.05)

    watcher = threading.Thread(target=remove_the_first_manifest_file, daemon=True)
    watcher.start()
    code = job(archive.input, archive.output, model_file, "--batch-size", "2")
    watcher.join()
    assert removed and code == 2
    assert "does not account for every input" in capsys.readouterr().err
