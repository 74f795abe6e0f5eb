"""The policy backtest beside the replay (`simulator replay --backtest`, `make year`).

The replay is sequential and keeps one core busy; the backtest of the same domain
(`simulator backtest`, simulator/backtest/) walks the period offline on one thread. So the
replay starts it at its own start in a child process at the lowest priority (nice 19: the
replay, the critical path, keeps its core, and its training runs keep OpenMP threads on every
core), its output to `<reports>/<spec>/backtest.log`; at its end the replay waits for it,
prints its table and target lines and links them from the saved report.

The child never outlives the replay: it is stopped when the replay returns or raises (Ctrl-C
included), by a SIGTERM handler before the replay dies of the signal as it would have (once
Dagster has executed a run in process, its interrupt handling gives SIGTERM SIGINT's handler:
then the KeyboardInterrupt's way out stops it; a replay started with SIGINT ignored, as a
background job of a script, so ignores SIGTERM too, with or without a child, and SIGKILL ends
both), and, on Linux, by the kernel when the replay dies
without a chance to clean up (the child asks for SIGTERM at its parent's death,
`PR_SET_PDEATHSIG`, before it starts the backtest). A child that fails is reported with the
tail of its log and makes the replay's exit code non-zero; it never hides the replay's own
result, printed before.

`python -m simulator.replay.beside <parent pid> <command...>` is that launcher: it lowers its
priority, ties itself to its parent, then execs the command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from simulator.backtest import SUMMARY_FILE

#: The child's niceness (19: the lowest priority, it runs on what the replay leaves idle).
NICE = 19
LOG = "backtest.log"
#: Seconds a stopped child gets between SIGTERM and SIGKILL.
STOP_GRACE = 10.0
#: Lines of a failed child's log shown in the message.
TAIL = 15


def backtest_command(spec_name: str) -> list[str]:
    """The backtest the replay runs beside itself: one process, fits in that process, one
    thread (of the backtest's modes the one with the least CPU in all; see the README)."""
    return [
        sys.executable,
        "-m",
        "simulator.cli",
        "backtest",
        "--spec",
        spec_name,
        "--one-process",
        "--workers",
        "0",
        "--threads",
        "1",
    ]


@dataclass
class Beside:
    """A child process started by `start`; `finish` waits for it and reports, `stop` ends it."""

    name: str
    process: subprocess.Popen
    log: Path
    summary: Path
    started: float = field(default_factory=time.perf_counter)
    _previous_sigterm: object = None

    @property
    def minutes(self) -> float:
        return (time.perf_counter() - self.started) / 60

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """End the child and whatever it started (its own process group), if it still runs."""
        self._restore_sigterm()
        if self.process.poll() is not None:
            return
        _signal_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def finish(self, say=print) -> tuple[int, str]:
        """Wait for the child (saying so if it is still running); returns (exit code, the
        summary it wrote) and says what it found, or (non-zero, "") and says why it failed."""
        waited = ""
        if self.running():
            say(
                f"\n{self.name} is still running ({self.minutes:.1f} min so far, log "
                f"{self.log}): waiting for it",
                flush=True,
            )
            waiting = time.perf_counter()
            self.process.wait()
            waited = f", the last {time.perf_counter() - waiting:.0f} s waited for"
        code = self.process.wait()
        self._restore_sigterm()
        if code == 0 and self.summary.is_file():
            text = self.summary.read_text()
            say(f"\n{self.name} (log {self.log}{waited}):\n\n{text.rstrip()}")
            return 0, text
        why = f"exit code {code}" if code else f"it wrote no {self.summary.name}"
        say(f"\n{self.name} FAILED ({why}); the last lines of {self.log}:")
        for line in _tail(self.log, TAIL):
            say(f"    {line}")
        return code or 1, ""

    def stop_on_sigterm(self) -> None:
        """Stop the child on SIGTERM, then let the signal do what it did before (by default:
        end this process). Only the main thread can set a handler; elsewhere, nothing."""
        try:
            previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not the main thread
            return
        # None: a handler not set from Python; the default action is what it did.
        self._previous_sigterm = signal.SIG_DFL if previous is None else previous

    def _on_sigterm(self, signum, frame) -> None:
        # Only signal the child's group here, never wait: a handler runs between two bytecodes
        # of the main thread, which may be inside `process.wait()` (`finish`), holding the
        # lock a second wait would block on forever. The way out (`finally: stop()`) waits.
        previous = self._previous_sigterm
        self._restore_sigterm()
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            os.kill(os.getpid(), signum)  # the default action, now restored

    def _restore_sigterm(self) -> None:
        if self._previous_sigterm is not None:
            previous, self._previous_sigterm = self._previous_sigterm, None
            try:
                signal.signal(signal.SIGTERM, previous)
            except ValueError:
                pass


def start(name: str, command: list[str], folder: Path) -> Beside:
    """Start `command` beside this process, lowered and tied to it (see the module), its
    output to `folder/backtest.log`; a summary left by an earlier run is removed first."""
    folder.mkdir(parents=True, exist_ok=True)
    log, summary = folder / LOG, folder / SUMMARY_FILE
    summary.unlink(missing_ok=True)
    launcher = [sys.executable, "-m", "simulator.replay.beside", str(os.getpid()), *command]
    with open(log, "w") as out:
        process = subprocess.Popen(
            launcher,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its own process group: a terminal's Ctrl-C reaches the replay, which stops it
            # (and `stop` ends the group, whatever the child started). Not its own session:
            # with the kernel's autogroups (on by default) a session is scheduled as a unit
            # against the others, so a child in a session of its own would compete with the
            # replay as an equal, whatever its nice value.
            process_group=0,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    beside = Beside(name, process, log, summary)
    beside.stop_on_sigterm()
    return beside


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError as exc:
        return [f"(unreadable: {exc})"]


def _die_with_parent(parent: int) -> None:
    """SIGTERM to this process when its parent dies (Linux; kept across exec), and an exit if
    the parent is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        sys.exit(f"the parent process {parent} is gone: not starting")


def launch(argv: list[str]) -> None:
    """`<parent pid> <command...>`: lower this process, tie it to its parent, exec the command."""
    parent, command = int(argv[0]), argv[1:]
    if not command:
        sys.exit("usage: python -m simulator.replay.beside <parent pid> <command...>")
    _die_with_parent(parent)
    os.nice(NICE)
    os.execv(command[0], command)


if __name__ == "__main__":
    launch(sys.argv[1:])
