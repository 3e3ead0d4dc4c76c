"""Native crashes (an abort or a segfault in a decoder, the model or an encoder) while one input is handled: how
the job finds that input and isolates it, so that one poison file never sinks a run.

A native crash kills the worker process, and Ray retries its task (Ray Data retries tasks and restarts actors
without limit), so a file that crashes its decoder every time would crash every retry. So each worker process
notes in a journal which keys it is handling, and the retry reads the notes of dead processes:
- keys that were handled together when a process died (the model stage predicts a batch at once) are handled
  one at a time from then on, to find which one it was;
- a key that was being handled alone when a process died, CRASHES_TO_ISOLATE times, becomes an error row
  saying it crashed its stage, and the rest of its batch goes on as usual. Twice, not once: a worker killed
  from outside (the out-of-memory killer, an operator) is not the key's fault.

The journal is a small file per worker process, in a folder per run under the node's temp folder, kept locked
(flock) while the process lives: the kernel drops the lock when the process dies, however it dies, so a file
that can be locked is a dead process's. It is node-local: on a cluster, a retry that lands on another node
crashes there too before that node knows the key.

For tests there is a fault point: settings.failpoints, from --failpoint / COLORIZE_FAILPOINT=STAGE:KEY (STAGE is
decode, predict or encode), makes that stage call os.abort() while it handles KEY.
"""
import fcntl
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

STAGES = ("decode", "predict", "encode")
CRASHES_TO_ISOLATE = 2


def parse_failpoint(text: str) -> tuple[str, str]:
    """STAGE:KEY as (stage, key); ValueError for an unknown stage."""
    stage, sep, key = text.partition(":")
    if not sep or stage not in STAGES or not key:
        raise ValueError(f"expected STAGE:KEY with STAGE one of {', '.join(STAGES)}")
    return stage, key


def crash_error(stage: str) -> str:
    """The manifest's error for an input that crashed its stage."""
    return (f"Crashed: the {stage} stage's worker process died {CRASHES_TO_ISOLATE} times while handling this "
            "input alone (a native crash, e.g. in its decoder); isolated so that the run goes on")


def journal_folder(run_id: str) -> Path:
    """This node's journal folder for a run."""
    return Path(tempfile.gettempdir()) / "colorize-journal" / run_id


def remove_journal(run_id: str) -> None:
    """Remove this node's journal of a finished run."""
    shutil.rmtree(journal_folder(run_id), ignore_errors=True)


class Journal:
    """This process's note of what it is handling, and what dead processes were handling, in one run."""

    def __init__(self, run_id: str, failpoints: tuple[tuple[str, str], ...] = ()):
        self.folder = journal_folder(run_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)  # held until this process ends, however it ends
        self.failpoints = failpoints
        self.dead: dict[Path, list[str]] = {}  # a dead process's file -> its last note: [stage, key, key...]

    def crashed(self, stage: str) -> tuple[set[str], set[str]]:
        """(keys to isolate: handled alone in `stage` by CRASHES_TO_ISOLATE processes that died; suspects: keys
        that were in `stage` when some process died, to be handled one at a time)."""
        for path in self.folder.iterdir():
            if path == self.path or path in self.dead:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # succeeds only once its process is gone
                self.dead[path] = os.read(fd, 1 << 20).decode().split("\n")
            except BlockingIOError:
                pass  # a live process
            finally:
                os.close(fd)
        alone: dict[str, int] = {}
        suspects: set[str] = set()
        for note in self.dead.values():
            if note[0] == stage and len(note) > 1:
                suspects.update(note[1:])
                if len(note) == 2:
                    alone[note[1]] = alone.get(note[1], 0) + 1
        return {k for k, n in alone.items() if n >= CRASHES_TO_ISOLATE}, suspects

    @contextmanager
    def handling(self, stage: str, keys):
        """Note `keys` as being handled in `stage` for the duration (a few syscalls, no sync: the note only has
        to outlive this process, not the machine)."""
        keys = list(keys)
        note = "\n".join([stage, *keys]).encode()
        os.pwrite(self.fd, note, 0)
        os.ftruncate(self.fd, len(note))
        try:
            if any(s == stage and k in keys for s, k in self.failpoints):
                os.abort()
            yield
        finally:
            os.ftruncate(self.fd, 0)


_journals: dict[str, Journal] = {}


def journal(run_id: str, failpoints: tuple[tuple[str, str], ...] = ()) -> Journal:
    """This process's journal for a run (a task's worker process runs many tasks: one journal file for all)."""
    if run_id not in _journals:
        _journals[run_id] = Journal(run_id, failpoints)
    return _journals[run_id]
