"""``--save-maps``: each method's maps as NIfTI volumes on the original grid, with the original
image's affine and header, so they overlay the scan in 3D Slicer or ITK-SNAP.

Slices are put back in the file's voxel order with the loader's display transform
(:func:`xaiseg.data.nifti.display_transform`), the inverse of what the loader applied when it
read them. Slices that were not scored (``--limit``, ``--positives-only``) are 0.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..output.atomic import save_nifti
from .store import safe_name


class MapVolumes:
    """Collects evaluated maps slice by slice and writes one volume per (method, scan) as soon
    as the scan is complete (slices arrive in data-set order, one scan after another), so at
    most one volume per method is held in memory."""

    def __init__(self, out: Path, methods: list[str]) -> None:
        self.out = Path(out)
        self.current: dict[str, tuple[str, Any, np.ndarray, Any] | None] = {m: None for m in methods}
        self.written: list[Path] = []

    def add(self, method: str, item: dict, saliency: np.ndarray) -> None:
        source = str(item.get("source", ""))
        if not source.endswith((".nii", ".nii.gz")):
            return  # DICOM slices (RSNA) have no volume grid to write maps on
        cur = self.current[method]
        if cur is None or cur[0] != source:
            self._flush(method)
            cur = self._open(source, str(item.get("subject", Path(source).stem)))
            self.current[method] = cur
        _src, img, vol, tf = cur
        vol[:, :, int(item["slice_index"])] = tf.invert(np.asarray(saliency, dtype=np.float32))

    def _open(self, source: str, subject: str):
        import nibabel as nib

        from ..data.nifti import display_transform, volume_shape

        img = nib.load(source)
        tf = display_transform(img)
        vol = np.zeros(volume_shape(img, Path(source)), dtype=np.float32)
        return (source, (img, subject), vol, tf)

    def _flush(self, method: str) -> None:
        cur = self.current.get(method)
        if cur is None:
            return
        _src, (img, subject), vol, _tf = cur
        path = self.out / safe_name(method) / f"{subject}.nii.gz"
        self.written.append(save_like(img, vol, path))
        self.current[method] = None

    def write(self) -> Path:
        for m in list(self.current):
            self._flush(m)
        return self.out


def save_like(ref_img, volume: np.ndarray, path: Path) -> Path:
    """Write ``volume`` (the voxel grid of ``ref_img``) as float32 NIfTI with ``ref_img``'s
    affine, qform/sform codes and header, so viewers overlay it on the scan exactly."""
    import nibabel as nib

    header = ref_img.header.copy()
    header.set_data_dtype(np.float32)
    data = np.asarray(volume, dtype=np.float32).reshape(ref_img.shape)
    out = nib.Nifti1Image(data, ref_img.affine, header)
    out.header.set_slope_inter(1.0, 0.0)
    out.set_qform(ref_img.get_qform(), code=int(ref_img.header["qform_code"]))
    out.set_sform(ref_img.get_sform(), code=int(ref_img.header["sform_code"]))
    return save_nifti(out, Path(path))
