"""Entry points: `python -m jobs.X` locally, `ray job submit -- python -m jobs.X` on a cluster."""
import os
import sys

# A Ray started here (no RAY_ADDRESS, no --ray-address) is a one-machine Ray: keep it on 127.0.0.1.
# Ray reads this when it is imported, and its own processes inherit it, so it is set before any import of ray.
if not os.environ.get("RAY_ADDRESS") and not any(a.startswith("--ray-address") for a in sys.argv):
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides the job's own output
