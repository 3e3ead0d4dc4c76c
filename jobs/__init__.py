"""Entry points: `python -m jobs.X` locally, `ray job submit -- python -m jobs.X` on a cluster."""
import argparse
import os

from colorize_core.model_file import DEFAULT_MODEL, Head, ModelFile, inspect_model_file, resolve_knobs
from colorize_core.lab import MODEL_SIZE, MODEL_SIZES, UPSAMPLING, UPSAMPLINGS
from colorize_core.runtime import PRECISIONS

# Each job: parse its flags (declared here where jobs share them), build its settings, call colorize_core,
# print. No job imports another; nothing here runs at import (the environment is runtime.start_ray's).


def add_input_flags(p, help: str, required: bool = True, selection: bool = True) -> None:
    """Where the photos come from: --input, --input-list and --s3-endpoint; with `selection`, also --split and
    --limit (the training and evaluation jobs pick photos from a folder of them)."""
    p.add_argument("--input", required=required, help=help)
    if selection:
        p.add_argument("--split", help="take the photos of this split from INPUT/MANIFEST.csv (columns path, split)")
    p.add_argument("--input-list", help="Parquet, CSV or text file of keys relative to --input (no listing of --input)")
    if selection:
        p.add_argument("--limit", type=int, help="only the first N photos (sorted by key)")
    p.add_argument("--s3-endpoint",
                   help="endpoint of an S3-compatible server, e.g. http://127.0.0.1:8333 (default: AWS_ENDPOINT_URL)")


def add_validation_flags(p, limit: int) -> None:
    """The photos a training run validates on (never trained on), shared by jobs.train and jobs.train_gpu."""
    p.add_argument("--val-split", help="validate on this split of INPUT/MANIFEST.csv")
    p.add_argument("--val-list", help="validate on the keys of this list (relative to --input)")
    p.add_argument("--val-limit", type=int, default=limit, help=f"validate on at most this many photos (default {limit})")


def add_model_stage_flags(p) -> None:
    """The model file and how its stage computes, shared by the colorize and evaluate jobs."""
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="colorizer .keras file, a path or s3:// (default: the shipped model)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="model compute precision (default auto, decided by each model worker: bfloat16 on GPUs, "
                        "bfloat16 on CPUs with AMX (about 4x faster there, the val figures within 1%%: MODEL_CARD.md), "
                        "float32 on other CPUs; the manifest's precision column says which)")
    p.add_argument("--batch-size", type=int, help="images per model batch (default 16 on CPU, 128 on GPU)")
    p.add_argument("--model-size", type=int, choices=MODEL_SIZES, default=MODEL_SIZE,
                   help=f"side of the grey image the network sees (default {MODEL_SIZE}, as trained; larger costs "
                        "about (size/224)^2 the model time: MODEL_CARD.md has what it gains)")
    add_knob_flags(p)


def add_runtime_flags(p) -> None:
    """Where a Ray job runs and what it shows: --ray-address and --verbose (runtime.start_ray)."""
    p.add_argument("--ray-address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray started here)")
    p.add_argument("--verbose", action="store_true",
                   help="show Ray's and the workers' logs here too (they are always in Ray's log folder)")


def model_and_knobs(args) -> tuple[ModelFile, float | None, float]:
    """The --model file inspected (SystemExit if missing or refused) and the knobs the run uses: the flags',
    else the file's own defaults (SystemExit, saying why, for a wrong one)."""
    model = inspect_model_file(args.model, args.s3_endpoint)
    try:
        return (model, *resolve_knobs(model, args.temperature, args.chroma_gain))
    except ValueError as e:
        raise SystemExit(f"{e}") from None


def add_knob_flags(p) -> None:
    """The colour knobs, shared by the colorize and evaluate jobs; both are recorded in every manifest row."""
    p.add_argument("--temperature", type=float,
                   help="classification head only: annealed-mean temperature, 1 = the predicted mean (muted), "
                        "toward 0 = the most likely colour (vivid) (default: the model file's)")
    p.add_argument("--chroma-gain", type=float,
                   help="multiply the predicted colour's chroma (0 grey, 1 as predicted); L is kept and out-of-"
                        "gamut colour pulled toward grey (default: the model file's, 1.0 if it carries none)")
    p.add_argument("--upsampling", choices=UPSAMPLINGS, default=UPSAMPLING,
                   help="how the predicted colour is brought to each image's size: bicubic, or guided (a guided "
                        f"filter with the original L as the guide: colour edges follow L's) (default {UPSAMPLING})")
    p.add_argument("--flip-average", action=argparse.BooleanOptionalAction, default=False,
                   help="predict each image and its mirror and average them (twice the model time; MODEL_CARD.md "
                        "has what it gains)")


def add_recipe_flags(p, batch_size: int, learning_rate: float) -> None:
    """The training recipe's flags (colorize_core.training.Recipe), the same for jobs.train (Ray Train) and
    jobs.train_gpu (one GPU, no Ray); the two differ only in their default batch size and learning rate."""
    from colorize_core.training import ENCODER_LR_SCALE  # here: only the training jobs take its seconds of imports

    p.add_argument("--head", choices=tuple(Head), type=Head, default=Head.REGRESSION,
                   help="regression: ab directly (the thesis's model); classification: a distribution over ~300 "
                        "colour bins, decoded by the annealed mean (Zhang et al. 2016): more vivid colour")
    p.add_argument("--loss", choices=("mse", "rebalanced"), default="mse",
                   help="regression head's loss (the classification head always uses rebalanced cross-entropy)")
    p.add_argument("--mix", type=float, default=0.5,
                   help="rebalancing: weight 1 / ((1 - mix) p + mix / Q), p the colour prior; 1 = none")
    p.add_argument("--unfreeze", nargs="*", default=[], help="encoder blocks to train too, e.g. block4 block5")
    p.add_argument("--learning-rate", type=float, default=learning_rate)
    p.add_argument("--encoder-lr-scale", type=float, default=ENCODER_LR_SCALE,
                   help="the --unfreeze blocks learn at this share of --learning-rate (default "
                        f"{ENCODER_LR_SCALE}: they are ImageNet-trained already)")
    p.add_argument("--batch-size", type=int, default=batch_size, help="per worker")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                   help="bfloat16: mixed precision (float32 weights; fast on GPUs and on CPUs with AMX)")
    p.add_argument("--default-temperature", type=float,
                   help="classification head: the annealed-mean temperature stored as the model's default "
                        "(default 0.38, Zhang et al.'s; choose it on a validation split)")
    p.add_argument("--init-model", default=DEFAULT_MODEL,
                   help="colorizer file to start from (default: the shipped one); its encoder, and its decoder "
                        "as far as it fits, start a model of another head")


def settings_from_environment(parser, prefix: str = "COLORIZE_"):
    """Let every flag also come from the environment: --input-list from COLORIZE_INPUT_LIST, and so on.

    The same job then takes its settings the same way on a laptop, under `ray job submit` (with
    --runtime-env-json '{"env_vars": {...}}') and in a KubeRay RayJob (the pod's `env`). A flag on the command
    line wins over the environment. Values go through the flag's own type and choices checks.
    """
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help",):
            continue
        name = prefix + action.option_strings[-1].lstrip("-").replace("-", "_").upper()
        if name not in os.environ:
            continue
        text = os.environ[name]
        if action.nargs == 0:  # a switch such as --overwrite
            if text.lower() not in ("1", "true", "yes", "0", "false", "no", ""):
                parser.error(f"{name}={text!r}: use 1/true/yes or 0/false/no")
            on = text.lower() in ("1", "true", "yes")
            value = on if action.const else not on  # COLORIZE_NO_METRICS=1 turns a store_false switch's value off
        else:
            value = text.split() if action.nargs in ("+", "*") else text
            try:
                value = [action.type(v) for v in value] if isinstance(value, list) and action.type else (
                    action.type(value) if action.type else value)
            except (TypeError, ValueError) as e:
                parser.error(f"{name}={text!r}: {e}")
            if action.choices is not None and any(v not in action.choices
                                                  for v in (value if isinstance(value, list) else [value])):
                parser.error(f"{name}={text!r}: choose from {', '.join(map(str, action.choices))}")
        action.default, action.required = value, False
    return parser
