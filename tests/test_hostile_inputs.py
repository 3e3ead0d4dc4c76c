"""What an archive really holds: broken, strange and oddly named files, and metadata that must not be lost.

Every input ends as a correct output or an error row that says why; the good images of the same run all succeed.
"""
import io
import struct
import zlib

import cv2
import exiv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from colorize_core import codec
from colorize_core.lab import bgr_to_lab
from tests.archive import decode_any, make_archive, run_job
from tests.conftest import EXAMPLES, exif_rotated_jpeg

pytestmark = pytest.mark.integration


def pil_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height grey pixels, with a few bytes of data: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


def photo(width: int = 96, height: int = 64) -> np.ndarray:
    grey = cv2.imread(str(EXAMPLES / "castle.jpg"), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA)


def hostile_inputs() -> tuple[dict[str, bytes], dict[str, str]]:
    """(key -> bytes, key -> a piece of the error expected; keys not in the second must come out ok)."""
    grey = photo()
    ladybird = (EXAMPLES / "ladybird.jpg").read_bytes()
    palette = Image.fromarray(grey).convert("P")
    alpha = np.tile(np.linspace(0, 255, grey.shape[1]).astype(np.uint8), (grey.shape[0], 1))
    frames = [Image.fromarray(grey), Image.fromarray(255 - grey)]
    pages = io.BytesIO()
    frames[0].save(pages, "TIFF", save_all=True, append_images=frames[1:])
    colour = cv2.imread(str(EXAMPLES / "boats.jpg"))  # grey photo: give it real colour
    colour = cv2.applyColorMap(cv2.cvtColor(cv2.resize(colour, (96, 64)), cv2.COLOR_BGR2GRAY), cv2.COLORMAP_JET)
    good = {
        "cmyk.jpg": pil_bytes(Image.fromarray(grey).convert("CMYK"), "JPEG", quality=95),
        "grey16.png": cv2.imencode(".png", grey.astype(np.uint16) * 257)[1].tobytes(),
        "palette-transparent.png": pil_bytes(palette, "PNG", transparency=0),
        "rgba.png": cv2.imencode(".png", np.dstack([cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), alpha]))[1].tobytes(),
        "rgba.webp": cv2.imencode(".webp", np.dstack([cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), alpha]),
                                  [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes(),
        "one-pixel.png": cv2.imencode(".png", grey[:1, :1])[1].tobytes(),
        "two-by-three.png": cv2.imencode(".png", grey[:3, :2])[1].tobytes(),
        "rotated.jpg": exif_rotated_jpeg()[0],
        "already-colour.jpg": cv2.imencode(".jpg", colour)[1].tobytes(),
    }
    bad = {
        "zero-bytes.jpg": (b"", "empty file"),
        "truncated.jpg": (ladybird[: len(ladybird) // 3], "corrupt"),
        "random-bytes.jpg": (np.random.default_rng(0).bytes(5000), "not a supported image"),
        "text.png": (b"Box 12, folder 3: letters. Not an image.\n" * 10, "not a supported image"),
        "bomb.png": (png_header_only(50_000, 50_000), "over the limit"),
        "animated.gif": (pil_bytes(Image.fromarray(grey), "GIF", save_all=True,
                                   append_images=[Image.fromarray(255 - grey)]), "GIF is not colorized"),
        "pages.tif": (pages.getvalue(), "multi-page TIFF"),
        "rgba.tif": (pil_bytes(Image.fromarray(np.dstack([grey, grey, grey, alpha])), "TIFF"), "TIFF with extra channels"),
    }
    return {**good, **{k: v for k, (v, _) in bad.items()}}, {k: e for k, (_, e) in bad.items()}


def test_bad_and_strange_inputs(tmp_path, model_file):
    inputs, errors = hostile_inputs()
    archive = make_archive("local", tmp_path, None, "hostile", inputs)
    code, rows = run_job(archive, model_file, "--max-error-fraction", "0.5")
    assert code == 0 and sorted(rows) == sorted(inputs), "one row per input"
    for key, expected in errors.items():
        assert rows[key]["status"] == "error" and expected in rows[key]["error"], (key, rows[key]["error"])
    assert {k for k, r in rows.items() if r["status"] == "ok"} == set(inputs) - set(errors), "every good one"

    for key in set(inputs) - set(errors):
        original, output = codec.decode_original(inputs[key]), codec.decode_original(archive.get(key))
        assert output.image.shape == original.image.shape and output.image.dtype == original.image.dtype, key
        L_error = np.abs(bgr_to_lab(output.image)[..., 0] - bgr_to_lab(original.image)[..., 0]) * 2.55
        assert L_error.mean() < 2.0, key  # its own lightness, in colour
        if original.alpha is not None:
            assert output.alpha is not None and np.array_equal(output.alpha, original.alpha), f"{key}: alpha kept"
    assert rows["already-colour.jpg"]["input_chroma"] > 20 > 1 > rows["cmyk.jpg"]["input_chroma"]
    assert rows["grey16.png"]["bit_depth"] == 16 and decode_any(archive.get("grey16.png")).dtype == np.uint16
    assert (rows["one-pixel.png"]["width"], rows["two-by-three.png"]["height"]) == (1, 3)


def test_the_pixel_limit_is_a_setting(tmp_path, model_file):
    data = cv2.imencode(".png", photo(64, 64))[1].tobytes()
    archive = make_archive("local", tmp_path, None, "limit", {"small.png": data, "big.png": cv2.imencode(
        ".png", photo(128, 64))[1].tobytes()})
    code, rows = run_job(archive, model_file, "--max-pixels", "5000", "--max-error-fraction", "0.5")
    assert rows["small.png"]["status"] == "ok" and "128 x 64 pixels is over the limit of 5,000" in rows["big.png"]["error"]


ODD_NAMES = ["with space.jpg", "ünïcødé/фото 1.jpg", "hash#1.jpg", "percent%20d.jpg", "question?.jpg",
             "plus+and&amp.jpg", "x" * 240 + ".jpg"]


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_odd_file_names(tmp_path, s3_server, model_file, kind):
    data = cv2.imencode(".jpg", photo())[1].tobytes()
    archive = make_archive(kind, tmp_path, s3_server, f"names-{kind}", {name: data for name in ODD_NAMES})
    code, rows = run_job(archive, model_file)
    assert code == 0 and sorted(rows) == sorted(ODD_NAMES)
    assert all(rows[name]["status"] == "ok" and rows[name]["output_key"] == name for name in ODD_NAMES), rows
    assert all(decode_any(archive.get(name)).shape == (64, 96, 3) for name in ODD_NAMES)
    code, rows = run_job(archive, model_file)
    assert all(rows[name]["status"] == "skipped" for name in ODD_NAMES), "found again by the same name"


# --- metadata -------------------------------------------------------------------------------------------------

def with_metadata(data: bytes, orientation: int = 1) -> bytes:
    """`data` (an encoded image) with EXIF, IPTC, XMP and an RGB ICC profile written into it by exiv2."""
    image = exiv2.ImageFactory.open(data)
    image.readMetadata()
    exif, iptc, xmp = image.exifData(), image.iptcData(), image.xmpData()
    exif["Exif.Image.ImageDescription"] = "Harbour at dawn"
    exif["Exif.Image.Artist"] = "A. Photographer"
    exif["Exif.Image.Orientation"] = orientation
    exif["Exif.Photo.DateTimeOriginal"] = "1931:05:04 06:12:00"
    iptc["Iptc.Application2.Caption"] = "Fishing boats in the harbour"
    iptc["Iptc.Application2.ObjectName"] = "box-12-item-3"
    xmp["Xmp.dc.identifier"] = "archive:box-12/item-3"
    xmp["Xmp.dc.description"] = "Harbour at dawn, 1931"
    image.setIccProfile(exiv2.DataBuf(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()))
    image.writeMetadata()
    with image.io().mmap() as view:
        return bytes(view)


def read_metadata(data: bytes) -> dict[str, str]:
    image = exiv2.ImageFactory.open(data)
    image.readMetadata()
    found = {d.key(): d.toString() for group in (image.exifData(), image.iptcData(), image.xmpData()) for d in group}
    return {**found, "icc": image.iccProfileDefined() and bytes(image.iccProfile().data())[16:20].decode()}


def test_metadata_is_carried_with_a_record_of_the_colorizing(tmp_path, model_file):
    grey = photo()
    inputs = {
        "photo.jpg": with_metadata(pil_bytes(Image.fromarray(np.rot90(grey)), "JPEG", quality=95), orientation=6),
        "photo.png": with_metadata(cv2.imencode(".png", grey)[1].tobytes()),
        "photo.tif": with_metadata(cv2.imencode(".tif", grey.astype(np.uint16) * 257)[1].tobytes()),
    }
    archive = make_archive("local", tmp_path, None, "metadata", inputs)
    code, rows = run_job(archive, model_file)
    assert code == 0
    for key in inputs:
        assert rows[key]["metadata"] == "exif,iptc,xmp,icc (sRGB)", rows[key]
        assert rows[key]["input_profile"] == "RGB profile converted to sRGB", rows[key]
        found = read_metadata(archive.get(key))
        # The descriptions with the caption note after them (tests/test_archival.py has the rest of the record).
        assert found["Exif.Image.ImageDescription"].startswith("Harbour at dawn Colour added by machine"), key
        assert found["Exif.Image.Artist"] == "A. Photographer"
        assert found["Exif.Photo.DateTimeOriginal"] == "1931:05:04 06:12:00", key
        assert found["Iptc.Application2.Caption"].startswith("Fishing boats in the harbour Colour added by machine"), key
        assert found["Iptc.Application2.ObjectName"] == "box-12-item-3", key
        assert found["Xmp.dc.identifier"] == "archive:box-12/item-3", key
        assert found["icc"] == "RGB ", key
        assert found["Exif.Image.Orientation"] == "1", f"{key}: the pixels are upright now"
        sha = rows[key]["model_sha256"]
        assert sha in found["Exif.Image.ImageHistory"] and "Colorized" in found["Exif.Image.ImageHistory"], key
        assert sha in found["Xmp.xmpMM.History[1]/stEvt:parameters"], key
        assert found["Xmp.xmpMM.History[1]/stEvt:action"] == "derived", key
        assert decode_any(archive.get(key)).shape == (64, 96, 3), f"{key}: upright, and still an image"
