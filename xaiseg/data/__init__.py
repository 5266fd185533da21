"""CT data: loaders for PhysioNet CT-ICH, RSNA 2019 and NIfTI folders, CT windowing and
resizing, automatic brain masks, augmentation and the synthetic head-CT phantom.

See docs/data.md. Heavy modules (nibabel, pydicom, scipy, torch) load on first use.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, DataError
from .constants import DEFAULT_WINDOWS, LABELS, SUBTYPES

if TYPE_CHECKING:  # pragma: no cover
    from .base import CTSliceDataset

LAYOUTS = ("physionet", "phantom", "rsna", "folder", "auto")

_LAZY = {
    "CTSliceDataset": ".base",
    "SliceRecord": ".base",
    "PhysioNetDataset": ".physionet",
    "RSNADataset": ".rsna",
    "FolderDataset": ".folder",
    "Preprocessor": ".preprocess",
    "Geometry": ".preprocess",
    "window_channels": ".preprocess",
    "brain_mask": ".brain",
    "Augment": ".augment",
    "render_slice": ".phantom",
    "write_phantom": ".phantom_writer",
    "PhantomSlice": ".phantom",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def detect_layout(path: str | Path) -> str:
    """Guess the layout of a data folder from the files it holds."""
    from .constants import PHYSIONET_CSV

    p = Path(path)
    if not p.is_dir():
        raise DataError(f"{p}: data folder not found")
    if (p / "ct_scans").is_dir() or (p / PHYSIONET_CSV).exists():
        return "physionet"
    if (p / "stage_2_train").is_dir() or (p / "stage_2_train.csv").exists():
        return "rsna"
    if (p / "images").is_dir():
        return "folder"
    raise DataError(f"{p}: cannot tell the layout (no ct_scans/, stage_2_train/ or images/); pass the layout explicitly")


def open_dataset(path: str | Path, layout: str = "auto", **kwargs: Any) -> "CTSliceDataset":
    """Open a CT data set of the given layout; keyword arguments go to the data set class.

    ``physionet`` (also the phantom's layout, alias ``phantom``): :class:`PhysioNetDataset`;
    ``rsna``: :class:`RSNADataset`; ``folder``: :class:`FolderDataset`; ``auto``: guessed from
    the folder's contents.
    """
    layout = str(layout).lower()
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown data layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(path)
    if layout in ("physionet", "phantom"):
        from .physionet import PhysioNetDataset

        return PhysioNetDataset(path, **kwargs)
    if layout == "rsna":
        from .rsna import RSNADataset

        return RSNADataset(path, **kwargs)
    from .folder import FolderDataset

    return FolderDataset(path, **kwargs)


__all__ = [
    "DEFAULT_WINDOWS",
    "LABELS",
    "LAYOUTS",
    "SUBTYPES",
    "detect_layout",
    "open_dataset",
    *_LAZY,
]
