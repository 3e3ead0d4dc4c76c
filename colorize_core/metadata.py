"""The original's header and metadata: its size before any pixel is decoded, and its EXIF, IPTC and XMP
carried onto the colour output with a record of the colorizing (and the output's own ICC profile) (exiv2, the library behind the
metadata of digiKam, darktable and GIMP).

The metadata travels between stages as exiv2's own metadata-only container (.exv, a few KB), not as the file.
"""
import re
import uuid
from dataclasses import dataclass

import exiv2

exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.mute)  # exiv2's complaints about odd files become manifest text instead

# TIFF tags that describe how the pixels are stored, not the photograph: the output's own are kept.
_STORAGE_TAGS = {"ImageWidth", "ImageLength", "BitsPerSample", "Compression", "PhotometricInterpretation",
                 "StripOffsets", "SamplesPerPixel", "RowsPerStrip", "StripByteCounts", "PlanarConfiguration",
                 "Predictor", "SampleFormat", "TileWidth", "TileLength", "TileOffsets", "TileByteCounts",
                 "ExtraSamples", "XMLPacket", "IPTCNAA", "InterColorProfile", "NewSubfileType", "SubIFDs"}
_WRITABLE = ("jpeg", "png", "tiff", "webp")  # formats exiv2 writes; BMP holds no metadata
SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"  # IPTC's Digital Source Type vocabulary
# The colour was made by a trained model, the lightness is the original's: a composite, in IPTC's words.
DIGITAL_SOURCE_TYPE = SOURCE_TYPES + "compositeWithTrainedAlgorithmicMedia"
CAPTION_NOTE = "Colour added by machine ({software}, model {model} sha256 {model_sha256}); the colours are an estimate."
NAMESPACE = "urn:colorize:xmp:1.0/"  # colorize:sha256, the original's, in xmpMM:DerivedFrom (stRef has no hash)
exiv2.XmpProperties.registerNs(NAMESPACE, "colorize")
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


@dataclass(frozen=True)
class Record:
    """What an output says of how it was made and from what (carry): a colour copy never passes for a photograph."""

    software: str
    model: str  # the model file's name
    model_sha256: str
    when: str  # ISO 8601, UTC
    original_key: str  # the original, relative to --input
    original_sha256: str  # of the original's bytes as read
    digital_source_type: str = DIGITAL_SOURCE_TYPE
    caption_note: str = CAPTION_NOTE  # appended to the description; "" for none (--caption-note)

    def note(self) -> str:
        """The caption note with its placeholders filled in ("" if turned off)."""
        return self.caption_note.format(software=self.software, model=self.model,
                                        model_sha256=self.model_sha256[:12])


@dataclass(frozen=True)
class Carried:
    """carry's result: the output's bytes, what was carried (the manifest's `metadata`), and an XMP sidecar
    (b"" if none) for what the output's format cannot hold."""

    data: bytes
    what: str
    sidecar: bytes = b""


def source_type_uri(term: str) -> str:
    """A digital source type as its IPTC URI: a term of the vocabulary (compositeWithTrainedAlgorithmicMedia) or
    its URI. ValueError for anything else."""
    term = term.strip()
    name = term[len(SOURCE_TYPES):] if term.startswith(SOURCE_TYPES) else term
    if not re.fullmatch(r"[A-Za-z]+", name):
        raise ValueError(f"{term!r} is not a term of the IPTC digital source type vocabulary ({SOURCE_TYPES}TERM, "
                         "e.g. compositeWithTrainedAlgorithmicMedia)")
    return SOURCE_TYPES + name


def _text(data, key: str) -> str:
    """The datum's value as text, "" if there is none."""
    found = data.findKey(_key_of(data, key))
    return found.toString() if found != data.end() else ""


def _key_of(data, key: str):
    """The exiv2 key of `key` for its kind of metadata."""
    return {exiv2.ExifData: exiv2.ExifKey, exiv2.IptcData: exiv2.IptcKey, exiv2.XmpData: exiv2.XmpKey}[type(data)](key)


def _erase(data, prefix: str) -> None:
    """Erase every datum whose key starts with `prefix` (a struct's fields with it)."""
    for key in [d.key() for d in data if d.key().startswith(prefix)]:
        data.erase(data.findKey(_key_of(data, key)))


def _record(image: exiv2.Image, record: Record) -> None:
    """Write the record of the colorizing into the image's metadata (the original's copied there already)."""
    exif, iptc, xmp = image.exifData(), image.iptcData(), image.xmpData()
    _erase(exif, "Exif.Image.Orientation")  # the original's, whatever its type and count: the pixels are upright
    exif["Exif.Image.Orientation"] = 1
    exif["Exif.Image.ImageHistory"] = (f"Colorized by {record.software} with model {record.model} "
                                       f"(sha256 {record.model_sha256}) at {record.when}")
    # The original's source type (a scan of a print, say) is not the output's: it goes into the history event.
    original_type = _text(xmp, "Xmp.iptcExt.DigitalSourceType")
    original_document, original_instance = _text(xmp, "Xmp.xmpMM.DocumentID"), _text(xmp, "Xmp.xmpMM.InstanceID")
    for prefix in ("Xmp.iptcExt.DigitalSourceType", "Xmp.xmpMM.DocumentID", "Xmp.xmpMM.InstanceID",
                   "Xmp.xmpMM.DerivedFrom"):
        _erase(xmp, prefix)
    instance = f"xmp.iid:{uuid.uuid4()}"
    xmp["Xmp.iptcExt.DigitalSourceType"] = record.digital_source_type
    xmp["Xmp.xmpMM.DocumentID"] = f"xmp.did:{uuid.uuid4()}"
    xmp["Xmp.xmpMM.InstanceID"] = instance
    if original_document and not _text(xmp, "Xmp.xmpMM.OriginalDocumentID"):
        xmp["Xmp.xmpMM.OriginalDocumentID"] = original_document
    derived = "Xmp.xmpMM.DerivedFrom/"
    if original_document:
        xmp[derived + "stRef:documentID"] = original_document
    if original_instance:
        xmp[derived + "stRef:instanceID"] = original_instance
    xmp[derived + "stRef:filePath"] = record.original_key
    xmp[derived + "colorize:sha256"] = record.original_sha256
    history = sum(1 for d in xmp if d.key().startswith("Xmp.xmpMM.History[") and d.key().endswith("]"))
    if not history:
        seq = exiv2.XmpTextValue()
        seq.setXmpArrayType(exiv2.XmpValue.XmpArrayType.xaSeq)
        xmp["Xmp.xmpMM.History"] = seq
    event = f"Xmp.xmpMM.History[{history + 1}]/stEvt:"
    xmp[event + "action"] = "derived"
    xmp[event + "instanceID"] = instance
    xmp[event + "softwareAgent"] = record.software
    xmp[event + "parameters"] = (f"colorized from lightness with model {record.model} sha256:{record.model_sha256}"
                                 + (f"; the original's digital source type: {original_type}" if original_type else ""))
    xmp[event + "when"] = record.when
    if note := record.note():
        _append_caption(exif, iptc, xmp, note)


def _append_caption(exif: exiv2.ExifData, iptc: exiv2.IptcData, xmp: exiv2.XmpData, note: str) -> None:
    """The caption note after the description, in each place a description lives (dc:description in every
    language, IPTC Caption-Abstract, and EXIF ImageDescription where the original has one)."""
    found = xmp.findKey(exiv2.XmpKey("Xmp.dc.description"))
    languages = dict(found.getValue()) if found != xmp.end() and found.typeId() == exiv2.TypeId.langAlt else {}
    if not languages and found != xmp.end():  # a plain text description, as some tools write it
        languages = {"x-default": found.toString()}
    languages = {lang: f"{text} {note}".strip() for lang, text in (languages or {"x-default": ""}).items()}
    _erase(xmp, "Xmp.dc.description")
    xmp["Xmp.dc.description"] = exiv2.LangAltValue(languages)
    caption = _text(iptc, "Iptc.Application2.Caption")
    _erase(iptc, "Iptc.Application2.Caption")
    iptc["Iptc.Application2.Caption"] = f"{caption} {note}".strip()[:2000]  # IIM's limit
    if description := _text(exif, "Exif.Image.ImageDescription"):
        exif["Exif.Image.ImageDescription"] = f"{description} {note}"


def _sidecar(exif: exiv2.ExifData, iptc: exiv2.IptcData, xmp: exiv2.XmpData) -> bytes:
    """An XMP sidecar (NAME.xmp) holding the metadata as XMP: exiv2 maps EXIF and IPTC onto their XMP properties."""
    sidecar = exiv2.ImageFactory.create(exiv2.ImageType.xmp)
    sidecar.setExifData(exif)
    sidecar.setIptcData(iptc)
    sidecar.setXmpData(xmp)
    sidecar.writeMetadata()
    return _bytes(sidecar)


def carry(output: bytes, fmt: str, exv: bytes, icc: bytes, record: Record) -> Carried:
    """The encoded output with the original's metadata (Header.exv and .icc) and the record of the colorizing:
    the IPTC digital source type of a composite made with a trained model (the original's own goes into the
    history event), a new DocumentID and InstanceID, DerivedFrom naming the original (its DocumentID, key and
    sha256), an xmpMM:History event, EXIF ImageHistory and the caption note.

    The pixels are upright now, so Orientation becomes 1. `icc` is the profile the output's pixels are in (sRGB,
    colour_profile.py: not the original's), or b"" for none. What the format cannot hold (all of it in a BMP,
    the IPTC in a WebP) goes into an XMP sidecar as well."""
    writable = fmt in _WRITABLE
    # A BMP holds no metadata: the record is made in a metadata-only container and goes to the sidecar.
    image = _open(output) if writable else exiv2.ImageFactory.create(exiv2.ImageType.exv)
    kinds, notes = [], []
    if exv:
        original = _open(exv)
        image.setExifData(original.exifData())
        image.setIptcData(original.iptcData())
        image.setXmpData(original.xmpData())
        kinds = [name for name, data in (("exif", original.exifData()), ("iptc", original.iptcData()),
                                         ("xmp", original.xmpData())) if data.count()]
    if icc and writable:
        image.setIccProfile(exiv2.DataBuf(icc))
        kinds.append("icc (sRGB)")
    _record(image, record)
    if not writable:
        return Carried(output, ",".join(kinds or ["none"]) + f"; all in the XMP sidecar ({fmt} holds no metadata)",
                       _sidecar(image.exifData(), image.iptcData(), image.xmpData()))
    sidecar = b""
    if fmt == "webp" and "iptc" in kinds:  # WebP cannot hold IPTC: the sidecar has it, as XMP, with the rest
        sidecar = _sidecar(image.exifData(), image.iptcData(), image.xmpData())
        kinds.remove("iptc")
        notes.append("IPTC in the XMP sidecar (WebP cannot hold it)")
    image.writeMetadata()
    return Carried(_bytes(image), ",".join(kinds or ["none"]) + "".join(f"; {n}" for n in notes), sidecar)
