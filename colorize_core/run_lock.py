"""One run at a time into an output: a lock object under OUTPUT/_manifest/, with the run's id and a heartbeat.

Two runs into one output would colorize every key twice and both write "complete" manifests that claim every key.
The second run now refuses to start, saying who holds the lock. A run that died leaves its lock behind; once its
heartbeat is older than STALE_S the next run takes it over (and says so); at once where the holder was a run on the
same host whose process (or, in one process, whose run) has ended. The lock is created only where nothing
is (O_EXCL locally, a conditional PUT on S3), so two runs starting together cannot both get it. A stale lock is
removed and then created the same way; only two runs taking over one dead run's lock in the same instant could
both get it.
"""
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field

from colorize_core.storage import Location

KEY = "_manifest/_LOCK.json"
HEARTBEAT_S = 30.0  # how often a live run refreshes its lock
STALE_S = 300.0  # a lock not refreshed for this long is a dead run's


_ENDED: set[str] = set()  # runs of this process that have ended: a lock one of them could not remove is dead


class LockHeld(SystemExit):
    """Another live run holds the output's lock; the message says which and what to do."""


def _dead_here(holder: dict) -> bool:
    """Whether the lock's holder was a run on this host that has ended (its process gone, or its run over): such a
    lock (left by a run that lost its storage, or was killed) is taken over at once, not after STALE_S."""
    if holder.get("host") != socket.gethostname():
        return False
    if holder.get("run_id") in _ENDED:
        return True
    try:
        os.kill(int(holder.get("pid", 0)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, OverflowError):
        pass
    return False


def _live(holder: dict, stale_s: float) -> bool:
    """Whether the lock's holder is a live run: refreshed within `stale_s`, and not a run here that has ended."""
    return time.time() - float(holder.get("heartbeat", 0)) < stale_s and not _dead_here(holder)


def live_holder(output: Location) -> str | None:
    """Which live run holds the output's lock ("run ID (host H, pid P)"), or None: for readers of the output
    that must not read it while a run writes (jobs.verify)."""
    try:
        holder = json.loads(output.read(KEY))
    except (FileNotFoundError, OSError, ValueError):
        return None
    return _describe(holder) if _live(holder, STALE_S) else None


def _describe(holder: dict) -> str:
    return f"run {holder.get('run_id')} (host {holder.get('host')}, pid {holder.get('pid')})"


@dataclass
class RunLock:
    """The output's lock, held by `run_id` from acquire() until release(), refreshed by a thread meanwhile."""

    output: Location
    run_id: str
    stale_s: float = STALE_S
    heartbeat_s: float = HEARTBEAT_S
    note: str = ""  # what acquire() had to do ("" or "took over the stale lock of ...")
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _content(self) -> bytes:
        return json.dumps({"run_id": self.run_id, "host": socket.gethostname(), "pid": os.getpid(),
                           "heartbeat": time.time()}).encode()

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.output.read(KEY))
        except (FileNotFoundError, OSError, ValueError):
            return None  # gone meanwhile, or unreadable (a half-written lock cannot happen: writes are whole)

    def acquire(self) -> "RunLock":
        """Take the lock, or raise LockHeld naming the live run that holds it."""
        if not self.output.create_exclusive(KEY, self._content()):
            holder = self._holder() or {}
            age = time.time() - float(holder.get("heartbeat", 0))
            if _live(holder, self.stale_s):
                raise LockHeld(
                    f"another run is writing into {self.output.uri}: {_describe(holder)}, its lock {KEY} refreshed "
                    f"{age:.0f} s ago. Wait for it to finish. If it died, its lock goes stale {self.stale_s:.0f} s "
                    f"after its last heartbeat and the next run takes it over (or remove {KEY} by hand).")
            self.output.delete(KEY)
            if not self.output.create_exclusive(KEY, self._content()):
                raise LockHeld(f"another run took over the stale lock of {self.output.uri} at the same moment: "
                               "wait for it to finish")
            self.note = f"took over the stale lock of {_describe(holder)}, last refreshed {age:.0f} s ago" + (
                "; that run has ended" if age < self.stale_s else "")
        self._thread = threading.Thread(target=self._beat, daemon=True, name="colorize-run-lock")
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                if (self._holder() or {}).get("run_id") == self.run_id:
                    self.output.write_atomic(KEY, self._content())
            except OSError:  # the storage away for a moment: the next beat tries again
                pass

    def release(self) -> None:
        """Stop refreshing and remove the lock, if it is still this run's."""
        self._stop.set()
        _ENDED.add(self.run_id)
        if self._thread is not None:
            self._thread.join()
        try:
            if (self._holder() or {}).get("run_id") == self.run_id:
                self.output.delete(KEY)
        except OSError:  # the storage gone: the lock goes stale and the next run takes it over
            pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
