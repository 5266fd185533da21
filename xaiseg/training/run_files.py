"""What every training run (classifier or segmenter) writes beside its checkpoint, and how a
run recognises itself on ``--resume``: the file names, the log that holds set-up lines back,
and the fingerprint of the options that change the numbers."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .checkpoint import jsonable

RESUME_FILE = "resume.pt"
LOG_FILE = "train_log.jsonl"
TEXT_LOG = "train.log"
# Options a resumed run may change: they do not change the numbers (``out`` is where resume.pt
# lives, however it is spelled: ./runs/a, runs/a/, an absolute path, a moved folder).
RESUME_FREE = ("resume", "progress", "workers", "device", "threads", "command", "out")



class RunLog:
    """train.log and the terminal. Set-up lines are held back until :meth:`release` (called once
    model and data are ready), so options that fail during set-up print just their one-line error."""

    def __init__(self, out: Path, progress: bool) -> None:
        self.path, self.progress = out / TEXT_LOG, progress
        self._held: list[tuple[str, str]] | None = []

    def __call__(self, msg: str) -> None:
        line = time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n"
        if self._held is not None:
            self._held.append((line, msg))
        else:
            self._emit([(line, msg)])

    def release(self) -> None:
        held, self._held = self._held or [], None
        self._emit(held)

    def _emit(self, lines: list[tuple[str, str]]) -> None:
        from tqdm.auto import tqdm

        if not lines:
            return
        with open(self.path, "a") as f:
            f.writelines(line for line, _ in lines)
        for _, msg in lines:
            tqdm.write(msg)



def run_fingerprint(cfg: Any) -> dict[str, Any]:
    """The options that change a run's numbers (a ``TrainConfig`` or ``SegmentationConfig``):
    ``--resume`` refuses to continue a run whose fingerprint differs."""
    d = cfg.to_dict()
    for k in RESUME_FREE:
        d.pop(k, None)
    return jsonable(d)


def check_same_options(saved: dict[str, Any], now: dict[str, Any], exempt: tuple[str, ...] = ()) -> None:
    """Refuse ``--resume`` when a fingerprint entry differs (other than ``exempt``), naming each
    with the run's value and the new one."""
    from ..errors import ConfigError

    diff = sorted(k for k in set(now) | set(saved) if now.get(k) != saved.get(k) and k not in exempt)
    if diff:
        raise ConfigError("--resume with different options than the interrupted run: " + "; ".join(
            f"{k} {_shown(saved.get(k))} in the run, {_shown(now.get(k))} now" for k in diff)
            + " (give the run's values, or start a new run in another --out)")


def _shown(value: Any) -> str:
    """A fingerprint value as the resume error shows it (the network built: its timm name, then kwargs)."""
    import json

    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], dict):
        return f"{value[0]} {json.dumps(value[1], sort_keys=True)}"
    return json.dumps(value)
