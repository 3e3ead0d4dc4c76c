"""What a run of the colorize chain knows, decided once on the driver: JobSettings.

Every knob is resolved before a JobSettings is made, on the driver: the temperature and chroma gain are the
flags', else the model file's own defaults (model_file.resolve_knobs, through jobs.model_and_knobs). The stages
use what they are given, and the manifest records it.
"""
from dataclasses import dataclass

from colorize_core import codec, credentials, lab, metadata
from colorize_core.storage import DEFAULT_MAX_BYTES, Location


@dataclass(frozen=True, kw_only=True)
class JobSettings:
    """What every stage needs to know about the run; small and picklable. Built with keywords only."""

    # Where the originals are, where their colour copies and the manifest go, and the run they belong to.
    input: Location
    output: Location
    run_id: str  # runtime.new_run_id()
    # The model file (every actor checks its copy against the hash) and its knobs, resolved.
    model_uri: str
    model_sha256: str
    # No defaults: a setting made without them would pass over the file's own (model_file.resolve_knobs).
    temperature: float | None  # the classification head's annealed-mean temperature; None: regression
    chroma_gain: float  # applied in lab.recombine (ab times this, L kept)
    model_endpoint: str | None = None  # the S3 endpoint the model file is fetched from (None: AWS_ENDPOINT_URL)
    model_size: int = lab.MODEL_SIZE  # the side of the L the network sees (lab.MODEL_SIZES)
    precision: str = "auto"  # runtime.PRECISIONS; "auto" is decided by the model's worker (runtime.resolve_precision)
    flip_average: bool = False  # each image and its mirror predicted and averaged (Colorizer)
    upsampling: str = lab.UPSAMPLING  # how ab reaches the image's size (lab.upsampled_ab)
    # Which inputs are taken, and how their outputs are written.
    overwrite: bool = False
    max_pixels: int = codec.DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES  # larger inputs are refused unread (--max-bytes)
    skip_colour: float | None = None  # inputs whose colour measure (lab.lightness) is above this are left alone
    jpeg_quality: int = 95
    # What each output says of itself (README, Archival use).
    digital_source_type: str = metadata.DIGITAL_SOURCE_TYPE  # IPTC's term, in every output's XMP
    caption_note: str = metadata.CAPTION_NOTE  # appended to each output's description; "" for none
    label: str = ""  # a visible line of text in a corner of each output's pixels (--label); "" for none
    signing: credentials.SigningKey | None = None  # C2PA: every output signed with it (--c2pa-cert, --c2pa-key)
    # For tests: (stage, key) pairs that crash their stage (crashes.py).
    failpoints: tuple[tuple[str, str], ...] = ()

