"""The original's header and metadata: its size before any pixel is decoded, and its EXIF, IPTC and XMP
carried onto the colour output with a record of the colorizing (and the output's own ICC profile) (exiv2, the library behind the
metadata of digiKam, darktable and GIMP).

The metadata travels between stages as exiv2's own metadata-only container (.exv, a few KB), not as the file.
"""
from dataclasses import dataclass

import exiv2

exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.mute)  # exiv2's complaints about odd files become manifest text instead

# TIFF tags that describe how the pixels are stored, not the photograph: the output's own are kept.
_STORAGE_TAGS = {"ImageWidth", "ImageLength", "BitsPerSample", "Compression", "PhotometricInterpretation",
                 "StripOffsets", "SamplesPerPixel", "RowsPerStrip", "StripByteCounts", "PlanarConfiguration",
                 "Predictor", "SampleFormat", "TileWidth", "TileLength", "TileOffsets", "TileByteCounts",
                 "ExtraSamples", "XMLPacket", "IPTCNAA", "InterColorProfile", "NewSubfileType", "SubIFDs"}
_WRITABLE = ("jpeg", "png", "tiff", "webp")  # formats exiv2 writes; BMP holds no metadata
_NUMBER_TYPES = (exiv2.TypeId.unsignedByte, exiv2.TypeId.unsignedShort, exiv2.TypeId.unsignedLong,
                 exiv2.TypeId.signedShort, exiv2.TypeId.signedLong)  # an Orientation's value, as EXIF allows it


class HeaderError(ValueError):
    """The file's header cannot be read: it is not an image exiv2 knows."""


@dataclass(frozen=True)
class Header:
    """What the original's header says, read without decoding its pixels."""

    width: int
    height: int
    more_pages: bool  # a multi-page TIFF
    extra_samples: bool  # a TIFF with channels beyond colour: alpha, or CMYK's fourth
    orientation: int  # EXIF orientation, 1 (upright) where there is none
    exv: bytes  # the original's EXIF, IPTC and XMP in an .exv container (b"" if it has none)
    icc: bytes  # the original's ICC profile (b"" if none)


def _open(data: bytes) -> exiv2.Image:
    image = exiv2.ImageFactory.open(data)
    image.readMetadata()
    return image


def _bytes(image: exiv2.Image) -> bytes:
    with image.io().mmap() as view:
        return bytes(view)


def _not_carried(datum: exiv2.Exifdatum) -> bool:
    """The stale grey thumbnail, other pages' and sub-images' tags, and how the original's pixels were stored."""
    group = datum.groupName()
    return group == "Thumbnail" or group.startswith("SubImage") or (group.startswith("Image") and group != "Image") \
        or (group == "Image" and datum.tagName() in _STORAGE_TAGS)


def read_header(data: bytes) -> Header:
    """Size, page count, orientation and metadata of an image file from its header (HeaderError if unreadable)."""
    try:
        image = _open(data)
    except exiv2.Exiv2Error as e:
        raise HeaderError(str(e.args[-1]) if e.args else str(e)) from None
    except (OverflowError, ValueError, RuntimeError) as e:  # exiv2's bindings on sizes that do not add up
        raise HeaderError(f"{type(e).__name__}: {e}") from None
    # The size first, before anything is erased: for a TIFF, exiv2 reads it from the ImageWidth and ImageLength
    # tags that the loop below erases (the output's own are written by the encoder).
    width, height = image.pixelWidth(), image.pixelHeight()
    if image.mimeType() == "image/x-ms-bmp" and height >= 2**31:  # a top-down BMP: its height is stored negative
        height = 2**32 - height
    exif = image.exifData()
    # A TIFF's later images (exiv2's groups Thumbnail, Image2, ...) are pages, unless marked reduced-resolution
    # copies (NewSubfileType bit 0). In a JPEG the Thumbnail group is the EXIF thumbnail.
    later = {d.groupName() for d in exif if d.groupName() == "Thumbnail" or d.groupName().startswith("Image2")
             or d.groupName()[5:].isdigit() and d.groupName().startswith("Image")}
    reduced = {d.groupName() for d in exif if d.groupName() in later and d.tagName() == "NewSubfileType"
               and d.toInt64() & 1}
    more_pages = image.mimeType() == "image/tiff" and bool(later - reduced)
    extra_samples = exif.findKey(exiv2.ExifKey("Exif.Image.ExtraSamples")) != exif.end()
    orientation = exif.findKey(exiv2.ExifKey("Exif.Image.Orientation"))
    # A tag with no value (count 0) or of a type that holds no number reads as upright.
    orientation = int(orientation.toInt64()) if orientation != exif.end() and orientation.count() > 0 \
        and orientation.typeId() in _NUMBER_TYPES else 1
    for key in [d.key() for d in exif if _not_carried(d)]:
        exif.erase(exif.findKey(exiv2.ExifKey(key)))
    exv = b""
    if exif.count() or image.iptcData().count() or image.xmpData().count():
        container = exiv2.ImageFactory.create(exiv2.ImageType.exv)
        container.setExifData(exif)
        container.setIptcData(image.iptcData())
        container.setXmpData(image.xmpData())
        container.writeMetadata()
        exv = _bytes(container)
    icc = bytes(image.iccProfile().data()) if image.iccProfileDefined() else b""
    return Header(width, height, more_pages, extra_samples, orientation if 1 <= orientation <= 8 else 1,
                  exv, icc)


def carry(output: bytes, fmt: str, exv: bytes, icc: bytes, record: dict[str, str]) -> tuple[bytes, str]:
    """The encoded output with the original's metadata (Header.exv and .icc) and a record of the colorizing.

    `record` has `software`, `model`, `model_sha256` and `when` (ISO 8601). The pixels are upright now, so
    Orientation becomes 1. `icc` is the profile the output's pixels are in (sRGB, colour_profile.py: not the
    original's), or b"" for none. Returns (bytes, what was carried, for the manifest).
    """
    if fmt not in _WRITABLE:
        return output, f"none ({fmt} holds no metadata)"
    image, kinds, notes = _open(output), [], []
    if exv:
        original = _open(exv)
        image.setExifData(original.exifData())
        image.setIptcData(original.iptcData())
        image.setXmpData(original.xmpData())
        kinds = [name for name, data in (("exif", original.exifData()), ("iptc", original.iptcData()),
                                         ("xmp", original.xmpData())) if data.count()]
        if fmt == "webp" and "iptc" in kinds:
            kinds.remove("iptc")
            notes.append("IPTC not carried (WebP cannot hold it)")
    if icc:
        image.setIccProfile(exiv2.DataBuf(icc))
        kinds.append("icc (sRGB)")
    exif, xmp = image.exifData(), image.xmpData()
    while (found := exif.findKey(exiv2.ExifKey("Exif.Image.Orientation"))) != exif.end():
        exif.erase(found)  # the original's, whatever its type and count: the output's is written afresh
    exif["Exif.Image.Orientation"] = 1
    exif["Exif.Image.ImageHistory"] = (f"Colorized by {record['software']} with model {record['model']} "
                                       f"(sha256 {record['model_sha256']}) at {record['when']}")
    history = sum(1 for d in xmp if d.key().startswith("Xmp.xmpMM.History[") and d.key().endswith("]"))
    if not history:
        seq = exiv2.XmpTextValue()
        seq.setXmpArrayType(exiv2.XmpValue.XmpArrayType.xaSeq)
        xmp["Xmp.xmpMM.History"] = seq
    event = f"Xmp.xmpMM.History[{history + 1}]/stEvt:"
    xmp[event + "action"] = "derived"
    xmp[event + "softwareAgent"] = record["software"]
    xmp[event + "parameters"] = f"colorized from lightness with model {record['model']} sha256:{record['model_sha256']}"
    xmp[event + "when"] = record["when"]
    image.writeMetadata()
    return _bytes(image), ",".join(kinds or ["none"]) + "".join(f"; {n}" for n in notes)
