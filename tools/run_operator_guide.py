"""Run the walk-through of docs/operator-guide.md as written: its top-level ```sh blocks, in order, in one bash.

    python tools/run_operator_guide.py            # from the repository root; takes a few minutes

Blocks indented under a list item are the (cloud) and (Kubernetes) ones: they are not run. The one liberty
taken: `raysubmit_...` in the text stands for the ID that `ray job submit --no-wait` printed, so the script
fills it in. It stops Ray on this machine at the end (`ray stop`, as the guide does): run it when no other
Ray is in use.
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "operator-guide.md"


def walkthrough_commands(text: str) -> list[str]:
    walk = text[text.index("## Walk-through"):text.index("\n## ", text.index("## Walk-through") + 1)]
    return re.findall(r"^```sh\n(.*?)^```", walk, flags=re.S | re.M)


def main() -> int:
    blocks = walkthrough_commands(GUIDE.read_text())
    script = ["set -exo pipefail", f"cd {ROOT}"]
    for block in blocks:
        for line in block.splitlines():
            if "--no-wait" in line:  # keep the printed submission ID for the commands that name it
                line += " | tee /tmp/guide-submit.out; ID=$(grep -o 'raysubmit_[A-Za-z0-9]*' /tmp/guide-submit.out | head -1)"
            script.append(line.replace("raysubmit_...", "$ID"))
    print("\n".join(script), flush=True)
    return subprocess.run(["bash", "-c", "\n".join(script)], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
