"""A colour copy an archive can trust: it says it was made by a model and from which original (XMP, IPTC, EXIF,
an XMP sidecar where the format holds none), every byte read and written has its sha256 in the manifest, the
fixity audit finds what changed, went missing or does not belong, and C2PA content credentials validate."""
import hashlib
import shutil
import subprocess

import cv2
import exiv2
import numpy as np
import pytest

from colorize_core import credentials, metadata
from colorize_core.storage import Location
from jobs import verify
from tests.archive import decode_any, make_archive, run_job
from tests.test_hostile_inputs import read_metadata
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.integration

PRINT = metadata.SOURCE_TYPES + "print"
NOTE_START = "Colour added by machine (colorize, model"


def grey(width: int = 96, height: int = 64, name: str = "castle.jpg") -> np.ndarray:
    photo = cv2.imread(str(EXAMPLES / name), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)


def scan_with_metadata(data: bytes) -> bytes:
    """An encoded image with what an archive's scan carries: its source type (a print), a DocumentID, a
    description and an IPTC caption, written by exiv2."""
    image = exiv2.ImageFactory.open(data)
    image.readMetadata()
    xmp = image.xmpData()
    xmp["Xmp.iptcExt.DigitalSourceType"] = PRINT
    xmp["Xmp.xmpMM.DocumentID"] = "xmp.did:scan-0001"
    xmp["Xmp.xmpMM.InstanceID"] = "xmp.iid:scan-0001-a"
    xmp["Xmp.dc.description"] = "Harbour at dawn, 1931"
    image.iptcData()["Iptc.Application2.Caption"] = "Fishing boats in the harbour"
    image.writeMetadata()
    with image.io().mmap() as view:
        return bytes(view)


def inputs() -> dict[str, bytes]:
    g = grey()
    return {"scan.jpg": scan_with_metadata(cv2.imencode(".jpg", g)[1].tobytes()),
            "scan.png": scan_with_metadata(cv2.imencode(".png", g)[1].tobytes()),
            "scan.tif": scan_with_metadata(cv2.imencode(".tif", g)[1].tobytes()),
            "plain.webp": cv2.imencode(".webp", g, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes(),
            "plain.bmp": cv2.imencode(".bmp", g)[1].tobytes()}


def test_outputs_say_they_are_machine_made_name_their_original_and_carry_sha256s(tmp_path, model_file):
    given = inputs()
    archive = make_archive("local", tmp_path, None, "provenance", given)
    code, rows = run_job(archive, model_file)
    assert code == 0 and all(row["status"] == "ok" for row in rows.values()), rows
    for key, data in given.items():
        row, written = rows[key], archive.get(key)
        assert row["input_sha256"] == hashlib.sha256(data).hexdigest(), key
        assert row["output_sha256"] == hashlib.sha256(written).hexdigest(), key
        found = read_metadata(archive.get(row["sidecar_key"]) if key.endswith(".bmp") else written)
        assert found["Xmp.iptcExt.DigitalSourceType"] == metadata.DIGITAL_SOURCE_TYPE, key
        assert PRINT not in found["Xmp.iptcExt.DigitalSourceType"]
        assert found["Xmp.xmpMM.DocumentID"].startswith("xmp.did:") and found["Xmp.xmpMM.InstanceID"].startswith("xmp.iid:")
        assert found["Xmp.xmpMM.DerivedFrom/stRef:filePath"] == key
        assert found["Xmp.xmpMM.DerivedFrom/colorize:sha256"] == row["input_sha256"], key
        event = found["Xmp.xmpMM.History[1]/stEvt:parameters"]
        assert row["model_sha256"] in event, key
        if not key.endswith(".bmp"):  # EXIF's ImageHistory has no XMP property for the sidecar to hold it in
            assert row["model_sha256"] in found["Exif.Image.ImageHistory"], key
        assert found["Xmp.xmpMM.History[1]/stEvt:instanceID"] == found["Xmp.xmpMM.InstanceID"]
        assert NOTE_START in found["Xmp.dc.description"] and row["model_sha256"][:12] in found["Xmp.dc.description"]
        if key.startswith("scan."):  # the original's own: its source type in the history, its IDs in DerivedFrom
            assert f"the original's digital source type: {PRINT}" in event, key
            assert found["Xmp.xmpMM.DocumentID"] != "xmp.did:scan-0001", "a new DocumentID for the output"
            assert found["Xmp.xmpMM.InstanceID"] != "xmp.iid:scan-0001-a"
            assert found["Xmp.xmpMM.DerivedFrom/stRef:documentID"] == "xmp.did:scan-0001", key
            assert found["Xmp.xmpMM.DerivedFrom/stRef:instanceID"] == "xmp.iid:scan-0001-a", key
            assert found["Xmp.xmpMM.OriginalDocumentID"] == "xmp.did:scan-0001", key
            assert found["Xmp.dc.description"].startswith('lang="x-default" Harbour at dawn, 1931 ' + NOTE_START), key
            assert found["Iptc.Application2.Caption"].startswith("Fishing boats in the harbour " + NOTE_START), key
        else:
            assert "digital source type" not in event
    assert rows["plain.bmp"]["sidecar_key"] == "plain.bmp.xmp", "BMP holds no metadata: the record is beside it"
    assert rows["plain.bmp"]["sidecar_sha256"] == hashlib.sha256(archive.get("plain.bmp.xmp")).hexdigest()
    assert not [k for k in read_metadata(archive.get("plain.bmp")) if k != "icc"], "nothing written into the BMP"
    assert all(rows[k]["sidecar_key"] == "" for k in given if not k.endswith(".bmp"))
    assert all(row["c2pa"] == "none" for row in rows.values())
    if shutil.which("exiv2"):  # the README's way to read it back: Debian's exiv2 command (.ci/run installs it)
        printed = subprocess.run(["exiv2", "-pa", f"{archive.output}/scan.jpg"], capture_output=True, text=True).stdout
        assert "Xmp.iptcExt.DigitalSourceType" in printed and metadata.DIGITAL_SOURCE_TYPE in printed, printed
        assert "Xmp.xmpMM.DerivedFrom/stRef:filePath" in printed and rows["scan.jpg"]["input_sha256"] in printed

    # The archive's own words: another source type, another caption note (then none), and the run says so.
    code, rows = run_job(archive, model_file, "--overwrite", "--digital-source-type", "digitalCreation",
                         "--caption-note", "Colourised for the exhibition ({model}).")
    found = read_metadata(archive.get("scan.jpg"))
    assert code == 0 and found["Xmp.iptcExt.DigitalSourceType"] == metadata.SOURCE_TYPES + "digitalCreation"
    assert found["Iptc.Application2.Caption"] == f"Fishing boats in the harbour Colourised for the exhibition " \
                                                 f"({model_file.name})."
    code, rows = run_job(archive, model_file, "--overwrite", "--caption-note", "")
    found = read_metadata(archive.get("scan.jpg"))
    assert found["Iptc.Application2.Caption"] == "Fishing boats in the harbour", "turned off: the caption as it was"
    assert found["Xmp.dc.description"] == 'lang="x-default" Harbour at dawn, 1931'
    with pytest.raises(SystemExit):
        run_job(archive, model_file, "--digital-source-type", "made up term")


def test_the_visible_label_is_a_small_band_in_a_corner(tmp_path, model_file):
    given = {"wide.jpg": cv2.imencode(".jpg", grey(480, 320, "boats.jpg"))[1].tobytes(),
             "deep.png": cv2.imencode(".png", grey(200, 300, "forest.jpg").astype(np.uint16) * 257)[1].tobytes()}
    plain = make_archive("local", tmp_path / "plain", None, "plain", given)
    labelled = make_archive("local", tmp_path / "labelled", None, "labelled", given)
    assert run_job(plain, model_file)[0] == 0
    assert run_job(labelled, model_file, "--label", "Colour added by machine")[0] == 0
    for key in given:
        a, b = decode_any(plain.get(key)).astype(np.float64), decode_any(labelled.get(key)).astype(np.float64)
        changed = np.abs(a - b).max(axis=2) > (2 if a.max() <= 255 else 512)  # beyond JPEG's own noise
        rows, cols = np.nonzero(changed)
        h, w = changed.shape
        assert changed.sum() > 100, f"{key}: a label was drawn"
        assert rows.min() > 0.85 * h and cols.max() < 0.65 * w, f"{key}: only in the bottom-left band"
        assert not changed[h // 4: 3 * h // 4, w // 4: 3 * w // 4].any(), f"{key}: the centre untouched"
        band = b[rows.min():, : cols.max()]
        assert band.max() > 0.9 * (255 if a.max() <= 255 else 65535), f"{key}: light text, legible on the dark band"


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_verify_finds_the_changed_the_missing_and_the_unexpected(tmp_path, s3_server, model_file, kind, capsys,
                                                                 monkeypatch):
    given = {f"box/{i}.jpg": cv2.imencode(".jpg", grey(64 + i, 48))[1].tobytes() for i in range(5)}
    given["box/scan.bmp"] = cv2.imencode(".bmp", grey())[1].tobytes()
    archive = make_archive(kind, tmp_path, s3_server, f"verify-{kind}", given)
    code, rows = run_job(archive, model_file)
    assert code == 0
    assert run_job(archive, model_file)[0] == 0, "a resumed run (all skipped) adds rows with no sha256"
    if kind == "local":
        monkeypatch.setattr("colorize_core.fixity.BUCKET_KEYS", 2)  # many buckets: the streaming path
    capsys.readouterr()
    assert verify.main(["--output", archive.output]) == 0
    assert "7 as written, 0 changed, 0 missing, 0 unexpected" in capsys.readouterr().out

    output = Location(archive.output)
    changed = bytearray(archive.get("box/1.jpg"))
    changed[len(changed) // 2] ^= 0x01  # one bit of one byte
    output.write_atomic("box/1.jpg", bytes(changed))
    output.delete("box/2.jpg")
    output.write_atomic("box/stray.txt", b"not written by the job")
    assert verify.main(["--output", archive.output]) == 1
    out = capsys.readouterr().out
    assert "changed: box/1.jpg" in out and "missing: box/2.jpg" in out and "unexpected: box/stray.txt" in out, out
    assert "5 as written, 1 changed, 1 missing, 1 unexpected" in out, out


# --- C2PA ---------------------------------------------------------------------------------------------------

def test_c2pa_credentials_validate_on_jpeg_png_and_tiff(tmp_path, model_file):
    pytest.importorskip("c2pa")

    chain, key, root = credentials.make_test_chain(tmp_path)
    given = {k: v for k, v in inputs().items() if k.startswith("scan.")}
    archive = make_archive("local", tmp_path, None, "c2pa", given)
    code, rows = run_job(archive, model_file, "--c2pa-cert", chain, "--c2pa-key", key)
    assert code == 0
    for key_, row in rows.items():
        data = archive.get(key_)
        assert row["status"] == "ok" and row["c2pa"] == "signed", row
        assert row["output_sha256"] == hashlib.sha256(data).hexdigest(), "the sha256 is of the signed bytes"
        state, failures, active = credentials.read(data, trust_anchors=root)
        assert state == "Trusted" and not failures, (key_, state, failures)
        (ingredient,) = active["ingredients"]
        assert ingredient["relationship"] == "parentOf" and ingredient["title"] == key_
        assert ingredient["metadata"]["org.colorize.sha256"] == row["input_sha256"]
        (actions,) = [a["data"]["actions"] for a in active["assertions"] if a["label"].startswith("c2pa.actions")]
        assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.edited"]
        assert actions[1]["digitalSourceType"] == metadata.DIGITAL_SOURCE_TYPE
        assert actions[1]["parameters"]["model_sha256"] == row["model_sha256"]
        assert actions[1]["parameters"]["model"] == model_file.name
        assert "c2pa.thumbnail.claim" not in str(active), "no thumbnail"
        assert read_metadata(data)["Xmp.iptcExt.DigitalSourceType"] == metadata.DIGITAL_SOURCE_TYPE, "XMP kept"
        state, failures, _ = credentials.read(data)  # without the test root: signed, but not by a trusted signer
        assert state == "Valid" and failures == ["signingCredential.untrusted"], (state, failures)
        tampered = bytearray(data)
        tampered[-len(tampered) // 3] ^= 0xFF
        assert credentials.read(bytes(tampered), trust_anchors=root)[0] == "Invalid", key_
    assert verify.main(["--output", archive.output]) == 0


def test_c2pa_credentials_that_cannot_sign_stop_the_job_before_any_work(tmp_path, model_file):
    pytest.importorskip("c2pa")
    archive = make_archive("local", tmp_path, None, "c2pa-bad", {"a.jpg": cv2.imencode(".jpg", grey())[1].tobytes()})
    for folder in ("good", "expired", "lone"):
        (tmp_path / folder).mkdir()
    good_chain, _, _ = credentials.make_test_chain(tmp_path / "good")
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    cases = {"the signing certificate is valid from .* not now: renew it": credentials.make_test_chain(tmp_path / "expired", expired=True),
             "a lone self-signed certificate, which C2PA refuses": credentials.make_test_chain(tmp_path / "lone", lone=True),
             "c2pa cannot sign with them": (good_chain, str(garbage)),
             "cannot read .*no-such.pem": (str(tmp_path / "no-such.pem"), str(garbage))}
    for message, (chain, key, *_) in cases.items():
        with pytest.raises(SystemExit, match=message):
            run_job(archive, model_file, "--c2pa-cert", chain, "--c2pa-key", key)
        assert not (tmp_path / "colour").exists(), f"{message}: refused before any work"
