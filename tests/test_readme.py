"""The README's promises: its two commands and its library example stay true."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_install_and_test_commands():
    first = re.search(r"```bash\n(.*?)```", README.read_text(), re.S).group(1).strip().splitlines()
    assert len(first) == 2
    assert first[0].startswith('pip install -e ".[test]" && xaiseg benchmark')
    assert first[1].startswith("python -m pytest -q")
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'pip install -e ".[test]"' in ci and "pytest -q" in ci


def test_readme_library_example_runs(capsys):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "torch.Size([2, 64, 64]) 0.0 1.0" in out and "hgi-sam" in out
