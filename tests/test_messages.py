"""ablations.messages: what the commands say to people."""

import argparse
import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ablations import messages
from ablations.messages import exit_with, remember_secrets
from test_run_support import SAFETY_LIMIT_S


def test_one_line_joins_lines_cuts_long_text_and_names_empty_errors():
    assert messages.one_line(ValueError("first\n  second")) == "first second"
    assert messages.one_line(KeyError()) == "KeyError"
    assert messages.one_line(RuntimeError("bad"), with_type=True) == "RuntimeError: bad"
    long = messages.one_line(ValueError("x" * 400), limit=300)
    assert len(long) == 303 and long.endswith("...")


def test_one_line_hides_remembered_passwords():
    remember_secrets("postgresql://user:hunter2secret@db/optuna")
    assert messages.one_line(ValueError("cannot reach user:hunter2secret@db")) == "cannot reach user:***@db"


@pytest.mark.parametrize("seconds, text", [
    (4.24, "4.2 s"), (38.4, "38 s"), (750, "12.5 min"), (11160, "3.10 h"), (float("nan"), "n/a")])
def test_duration(seconds, text):
    assert messages.duration(seconds) == text


def test_run_command_turns_known_errors_into_one_line_and_a_status(capsys):
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--n", type=int, default=1)

    def body(args):
        if args.n < 0:
            raise ValueError("--n: -1 is not allowed;\n  expected >= 0")
        if args.n == 0:
            raise OSError("disk full")
        return 0

    exits = {ValueError: 2, OSError: 3}
    assert messages.run_command(parser, ["--n", "1"], body, exits) == 0
    assert messages.run_command(parser, ["--n", "-1"], body, exits) == 2
    assert capsys.readouterr().err == "error: --n: -1 is not allowed; expected >= 0\n"
    assert messages.run_command(parser, ["--n", "0"], body, exits) == 3
    assert messages.run_command(parser, ["--n", "x"], body, exits) == 2  # argparse's own usage error
    assert "invalid int value" in capsys.readouterr().err
    with pytest.raises(KeyError):  # not a user's error: raised as it is
        messages.run_command(parser, [], lambda args: {}["missing"], exits)


@pytest.mark.parametrize("code, advice", [
    (errno.ENOSPC, "the disk is full; free space and run the same command again"),
    (errno.EROFS, "the file system is read-only"),
    (errno.EACCES, "this user may not write there"),
])
def test_a_file_system_error_says_where_what_and_what_to_do(capsys, code, advice):
    messages.print_error(OSError(code, os.strerror(code), "runs/study/trial-3"))
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"error: runs/study/trial-3: {os.strerror(code)}; {advice}")
    assert "\n" not in line


# A Ctrl-C caught after it escaped an `exec` of a string (as when it lands in a dataclass being built during
# an import), then an exit with 130.
_CAUGHT_IN_EXEC = """
import sys
import textwrap
from ablations.messages import exit_with
try:
    exec("raise KeyboardInterrupt")
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
{exit}
"""


@pytest.mark.parametrize("how, status", [("sys.exit(130)", -signal.SIGINT), ("exit_with(130)", 130)])
def test_an_interrupt_caught_from_exec_exits_130_only_through_exit_with(tmp_path, how, status):
    """Run as `python -m`, as the commands are (`-c` and a script exit inside CPython's own error printing,
    before it looks): CPython 3.11 ends such a process by SIGINT whatever sys.exit asked (the first case,
    the behaviour `exit_with` works around; if a Python no longer does it, the workaround can go), and
    exit_with keeps the status the command's one line promised."""
    (tmp_path / "caught.py").write_text(_CAUGHT_IN_EXEC.format(exit=how))
    root = Path(messages.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-m", "caught"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == status and done.stderr == "interrupted\n", (done.returncode, done.stderr)


def test_exit_with_any_other_status_is_sys_exit():
    with pytest.raises(SystemExit) as exit_:
        exit_with(2)
    assert exit_.value.code == 2


def test_exit_with_130_ends_a_process_an_idle_thread_pool_would_keep(tmp_path):
    """torch.compile leaves an idle concurrent.futures worker (a non-daemon thread that stops only when the
    pools' exit hook tells it to); exit_with runs that hook before joining, as the interpreter does."""
    (tmp_path / "pooled.py").write_text(textwrap.dedent("""\
        from concurrent.futures import ThreadPoolExecutor
        from ablations.messages import exit_with
        pool = ThreadPoolExecutor(max_workers=1)
        pool.submit(int).result()  # its worker now waits for more work
        exit_with(130)
        """))
    root = Path(messages.__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "pooled"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=SAFETY_LIMIT_S)
    assert done.returncode == 130, done.stderr
