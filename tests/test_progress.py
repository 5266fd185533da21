"""Progress bars draw on a terminal only: a command whose output goes to a pipe or a log file
prints its results, not the bar's carriage-return updates."""
from __future__ import annotations

import subprocess
import sys

from xaiseg.progress import progress_bar


class _Terminal:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_a_bar_draws_on_a_terminal_and_never_elsewhere():
    tty = _Terminal()
    for _ in progress_bar(range(3), enabled=True, file=tty, desc="work"):
        pass
    assert "work" in tty.text
    off = _Terminal()
    for _ in progress_bar(range(3), enabled=False, file=off, desc="work"):
        pass
    assert off.text == ""


def test_a_command_writing_to_a_pipe_prints_no_bar(tmp_path):
    r = subprocess.run([sys.executable, "-m", "xaiseg", "phantom", str(tmp_path / "ph"), "--subjects", "2", "--slices", "2",
                        "--size", "32"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "slice/s" not in r.stdout + r.stderr and "%|" not in r.stdout + r.stderr
    assert "wrote 2 subjects" in r.stdout
