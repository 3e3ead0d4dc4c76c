"""Entry points: `python -m jobs.X` locally, `ray job submit -- python -m jobs.X` on a cluster."""
import os
import sys

# A Ray started here (no RAY_ADDRESS, no --ray-address) is a one-machine Ray: keep it on 127.0.0.1.
# Ray reads this when it is imported, and its own processes inherit it, so it is set before any import of ray.
if not os.environ.get("RAY_ADDRESS") and not any(a.startswith("--ray-address") for a in sys.argv):
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides the job's own output

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models", "colorizer.keras")


def add_knob_flags(p) -> None:
    """The colour knobs, shared by the colorize and evaluate jobs; both are recorded in every manifest row."""
    p.add_argument("--temperature", type=float,
                   help="classification head only: annealed-mean temperature, 1 = the predicted mean (muted), "
                        "toward 0 = the most likely colour (vivid) (default: the model file's)")
    p.add_argument("--chroma-gain", type=float,
                   help="multiply the predicted colour's chroma (0 grey, 1 as predicted); L is kept and out-of-"
                        "gamut colour pulled toward grey (default: the model file's, 1.0 if it carries none)")


def add_recipe_flags(p, batch_size: int, learning_rate: float) -> None:
    """The training recipe's flags (colorize_core.training.Recipe), the same for jobs.train (Ray Train) and
    jobs.train_gpu (one GPU, no Ray); the two differ only in their default batch size and learning rate."""
    p.add_argument("--head", choices=("regression", "classification"), default="regression",
                   help="regression: ab directly (the thesis's model); classification: a distribution over ~300 "
                        "colour bins, decoded by the annealed mean (Zhang et al. 2016): more vivid colour")
    p.add_argument("--loss", choices=("mse", "rebalanced"), default="mse",
                   help="regression head's loss (the classification head always uses rebalanced cross-entropy)")
    p.add_argument("--mix", type=float, default=0.5,
                   help="rebalancing: weight 1 / ((1 - mix) p + mix / Q), p the colour prior; 1 = none")
    p.add_argument("--unfreeze", nargs="*", default=[], help="encoder blocks to train too, e.g. block4 block5")
    p.add_argument("--learning-rate", type=float, default=learning_rate)
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
            value = text.lower() in ("1", "true", "yes")
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
