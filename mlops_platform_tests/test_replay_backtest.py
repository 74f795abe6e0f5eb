"""The policy backtest beside the replay (`simulator replay --backtest`, replay/beside.py):
real child processes standing in for the backtest (a few lines of Python each), started,
reported and stopped by the replay's own code. The wiring inside a whole replay is checked by
test_rainfall_replay.py (a finished child's summary printed and saved with the report).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_platform_tests.serving_support import wait_until
from simulator.backtest import SUMMARY_FILE
from simulator.cli import build_parser
from simulator.replay import beside

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def finish(child: beside.Beside) -> tuple[int, str, str]:
    said: list[str] = []
    code, summary = child.finish(say=lambda *parts, **_: said.append(" ".join(parts)))
    return code, summary, "\n".join(said)


def test_a_finished_backtest_says_its_summary_at_low_priority(tmp_path):
    path = str(tmp_path / SUMMARY_FILE)
    script = (
        "import os; print('niceness', os.nice(0), 'session', os.getsid(0)); "
        f"open({path!r}, 'w').write('the table')"
    )
    child = beside.start("the backtest", python(script), tmp_path)
    code, summary, said = finish(child)
    assert (code, summary) == (0, "the table")
    assert "the table" in said and "FAILED" not in said
    # Lowered within the replay's session: the kernel schedules a session as a unit
    # (autogroups), so only there does the niceness lower it against the replay.
    log = (tmp_path / beside.LOG).read_text()
    assert f"niceness {beside.NICE} session {os.getsid(0)}" in log


@pytest.mark.parametrize(
    "script, why",
    [
        ("print('walked half'); raise SystemExit('no labels by 2013-03-01')", "exit code 1"),
        ("import os; print('killed'); os.kill(os.getpid(), 9)", "exit code -9"),
        ("print('finished, wrote nothing')", f"it wrote no {SUMMARY_FILE}"),
    ],
)
def test_a_failed_backtest_is_reported_with_its_log_and_a_non_zero_code(tmp_path, script, why):
    (tmp_path / SUMMARY_FILE).write_text("a summary left by an earlier run\n")
    child = beside.start("the backtest", python(script), tmp_path)
    code, summary, said = finish(child)
    assert code != 0 and summary == ""
    assert f"the backtest FAILED ({why})" in said
    assert script.split("'")[1] in said  # the log's tail
    assert str(tmp_path / beside.LOG) in said


def alive(pid: int) -> bool:
    """Running (a zombie has finished: it only waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


#: A replay standing in: starts a backtest that would walk for ten minutes with a worker
#: process of its own, says its pid, waits: sleeping, or (argv 2 "finish") in `finish`, whose
#: wait on the child a signal handler must not wait beside (it would block forever).
REPLAY = """
import sys, time
from pathlib import Path
from simulator.replay import beside
backtest = (
    "import subprocess, sys, time; "
    "worker = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
    "print('walking with worker', worker.pid, flush=True); time.sleep(600)"
)
child = beside.start("the backtest", [sys.executable, "-c", backtest], Path(sys.argv[1]))
print(child.process.pid, flush=True)
try:
    if sys.argv[2:] == ["finish"]:
        child.finish()
    else:
        time.sleep(600)
finally:
    child.stop()
"""


@linux
@pytest.mark.parametrize(
    "signum, dies_of, worker_stopped",
    [
        # The handler stops the backtest and its worker, then the signal's default action.
        (signal.SIGTERM, -signal.SIGTERM, True),
        # KeyboardInterrupt (a terminal's Ctrl-C): `stop` on the way out, then the default.
        (signal.SIGINT, -signal.SIGINT, True),
        # No clean-up at all: the kernel tells the backtest (not its workers: the mode
        # `backtest_command` runs starts none).
        (signal.SIGKILL, -signal.SIGKILL, False),
    ],
)
@pytest.mark.parametrize("waiting", ["sleep", "finish"])
def test_the_backtest_does_not_outlive_the_replay(
    tmp_path, signum, dies_of, worker_stopped, waiting
):
    worker = 0
    replay = subprocess.Popen(
        [sys.executable, "-c", REPLAY, str(tmp_path), waiting],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        # SIGINT as a terminal's Ctrl-C delivers it (not ignored as in a background job)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        child = int(replay.stdout.readline())
        log = tmp_path / beside.LOG
        wait_until(lambda: "walking" in log.read_text(), "the backtest starting")
        worker = int(log.read_text().split()[-1])
        replay.send_signal(signum)
        assert replay.wait(30) == dies_of
        wait_until(lambda: not alive(child), f"backtest {child} stopping")
        if worker_stopped:
            wait_until(lambda: not alive(worker), f"its worker {worker} stopping")
    finally:
        replay.kill()
        replay.wait()
        if worker and alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_replay_backtest_runs_the_backtest_in_one_process_on_one_thread():
    args = build_parser().parse_args(["replay", "--fresh", "--backtest"])
    assert args.backtest and args.command == "replay"
    assert not hasattr(build_parser().parse_args(["quickstart"]), "backtest")
    command = beside.backtest_command("flight_delay")
    assert command[:3] == [sys.executable, "-m", "simulator.cli"]
    backtest = build_parser().parse_args(command[3:])
    assert (backtest.spec, backtest.one_process, backtest.workers, backtest.threads) == (
        "flight_delay",
        True,
        0,
        1,
    )


@pytest.mark.parametrize(
    "argv, said",
    [
        (["--backtest", "--report-name", "backtest"], "--report-name backtest is the backtest's"),
        (["--through", "2013-13-99"], "--through '2013-13-99' is not a date"),
        (["--through", "9" * 100_000], "is not a date"),
    ],
)
def test_replay_refuses_bad_arguments_before_touching_anything(argv, said, tmp_path, monkeypatch):
    """A usage error is a one-line message and exit code, not a traceback, and comes before
    `--fresh` would wipe the data dir or the Dagster home is made."""
    from simulator.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with pytest.raises(SystemExit) as exited:
        main(["replay", "--fresh", *argv])
    message = str(exited.value.code)
    assert message.startswith("simulator replay: ") and said in message and len(message) < 200
    assert not (tmp_path / "home").exists()
