"""Reading NIfTI volumes slice by slice, with image and mask kept aligned.

Conventions (the same for every NIfTI layout):

- The **slice axis is the file's third voxel axis** (axis 2): slice number ``n`` in a label CSV
  is ``data[:, :, n - 1]``, as in PhysioNet CT-ICH. Volumes are not resampled.
- A mask (or brain mask) is brought into the image's voxel order using both files' affines
  (only axis permutations and flips, found with ``nibabel.orientations``), so a mask stored with
  a flipped or permuted affine still lands on the right voxels. A mask file without any
  orientation (qform and sform codes 0) is taken to be in the image's voxel order. After this
  the mask must have exactly the image's shape.
- Each 2-D slice is shown in the radiological convention when the image's in-plane axes are
  left-right and antero-posterior (an axial volume): rows run anterior -> posterior, columns run
  from the patient's right to the patient's left. Other orientations (or an image without
  orientation) keep the voxel order: rows = axis 1, columns = axis 0.
- ``spacing`` is (row_mm, col_mm) from the header's voxel sizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def nifti_stem(path: Path) -> str | None:
    """File name without ``.nii``/``.nii.gz``, or None if it is not a NIfTI file name."""
    name = path.name
    for suf in NIFTI_SUFFIXES:
        if name.endswith(suf) and len(name) > len(suf):
            return name[: -len(suf)]
    return None


def open_nifti(path: Path):
    """``nibabel.load`` with one-line errors (the pixel data is not read yet)."""
    import nibabel as nib

    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for corrupt files
        raise DataError(f"{path}: not a readable NIfTI file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if not hasattr(img, "dataobj") or not hasattr(img, "affine"):
        raise DataError(f"{path}: not a NIfTI image")
    return img


def volume_shape(img, path: Path) -> tuple[int, int, int]:
    """The 3-D shape of a volume; a 2-D image is one slice; 4-D (more than one frame) is an error."""
    shape = tuple(int(s) for s in img.shape)
    while len(shape) > 3 and shape[-1] == 1:  # (X, Y, Z, 1) is still one volume
        shape = shape[:-1]
    if len(shape) == 2:
        shape = shape + (1,)
    if len(shape) != 3:
        raise DataError(f"{path}: a {len(img.shape)}-D image of shape {tuple(img.shape)}; expected a 3-D volume (or one 2-D slice)")
    if min(shape) == 0:
        raise DataError(f"{path}: empty volume of shape {shape}")
    return shape  # type: ignore[return-value]


def _has_orientation(img) -> bool:
    hdr = img.header
    try:
        return int(hdr["sform_code"]) > 0 or int(hdr["qform_code"]) > 0
    except (KeyError, TypeError, ValueError):
        return False


@dataclass(frozen=True)
class DisplayTransform:
    """How a 2-D voxel slice ``data[:, :, k]`` becomes a displayed (rows, cols) slice."""

    transpose: bool  # True: rows = axis 0, cols = axis 1; False: rows = axis 1, cols = axis 0
    flip_rows: bool
    flip_cols: bool

    def apply(self, sl: np.ndarray) -> np.ndarray:
        out = sl if self.transpose else sl.T
        if self.flip_rows:
            out = out[::-1, :]
        if self.flip_cols:
            out = out[:, ::-1]
        return out

    def invert(self, disp: np.ndarray) -> np.ndarray:
        """Displayed slice back to the voxel slice (for writing maps in the image's space)."""
        out = disp
        if self.flip_cols:
            out = out[:, ::-1]
        if self.flip_rows:
            out = out[::-1, :]
        return out if self.transpose else out.T


def display_transform(img) -> DisplayTransform:
    """Radiological display of axial slices (see module docstring)."""
    if not _has_orientation(img):
        return DisplayTransform(False, False, False)
    import nibabel as nib

    codes = nib.aff2axcodes(img.affine)
    a0, a1 = codes[0], codes[1]
    if a0 in "LR" and a1 in "AP":  # rows <- axis 1, cols <- axis 0
        return DisplayTransform(False, flip_rows=(a1 == "A"), flip_cols=(a0 == "R"))
    if a0 in "AP" and a1 in "LR":  # rows <- axis 0, cols <- axis 1
        return DisplayTransform(True, flip_rows=(a0 == "A"), flip_cols=(a1 == "R"))
    return DisplayTransform(False, False, False)


def voxel_sizes(img) -> tuple[float, float, float]:
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    while len(zooms) < 3:
        zooms = zooms + (1.0,)
    return zooms  # type: ignore[return-value]


def display_spacing(img, tf: DisplayTransform) -> tuple[float, float]:
    z = voxel_sizes(img)
    return (z[0], z[1]) if tf.transpose else (z[1], z[0])


def read_array(img, path: Path) -> np.ndarray:
    """The voxel data as a 3-D array (scaled by scl_slope/inter; memory-mapped when possible)."""
    try:
        arr = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise DataError(f"{path}: cannot read the voxel data ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    shape = volume_shape(img, path)
    return arr.reshape(shape)


def into_image_order(arr: np.ndarray, img, ref_img, path: Path, ref_path: Path) -> np.ndarray:
    """Flip/permute a mask's voxel array into its image's voxel order (by the affines)."""
    if _has_orientation(img) and _has_orientation(ref_img):
        from nibabel import orientations as ornt

        src = ornt.io_orientation(img.affine)
        dst = ornt.io_orientation(ref_img.affine)
        tf = ornt.ornt_transform(src, dst)
        if not np.array_equal(tf, [[0, 1], [1, 1], [2, 1]]):
            arr = ornt.apply_orientation(arr, tf)
    ref_shape = volume_shape(ref_img, ref_path)
    if tuple(arr.shape) != tuple(ref_shape):
        raise DataError(f"{path}: shape {tuple(arr.shape)} differs from its image {ref_path.name} {tuple(ref_shape)}")
    return arr


def check_same_grid(img, ref_img, path: Path, ref_path: Path) -> None:
    """Header-only check that a mask can be aligned with its image (raises DataError)."""
    dummy = np.broadcast_to(np.zeros((), dtype=np.uint8), volume_shape(img, path))  # no memory
    into_image_order(dummy, img, ref_img, path, ref_path)


def load_volume(image: Path, mask: Path | None, brain: Path | None = None) -> dict:
    """Image, mask and brain arrays of one volume, masks in the image's voxel order."""
    img = open_nifti(image)
    tf = display_transform(img)
    out: dict = {"ct": read_array(img, image), "tf": tf, "spacing": display_spacing(img, tf), "mask_path": mask}
    for key, path in (("mask", mask), ("brain", brain)):
        if path is not None:
            m_img = open_nifti(path)
            out[key] = into_image_order(read_array(m_img, path), m_img, img, path, image)
    return out


def slice_item(vol: dict, k: int, where: str) -> dict:
    """Slice ``k`` of a loaded volume as item tensors (image HU float32, masks uint8 0/1)."""
    import torch

    from .base import check_finite

    tf = vol["tf"]
    hu = np.ascontiguousarray(tf.apply(np.asarray(vol["ct"][:, :, k])), dtype=np.float32)
    check_finite(hu, where)
    item: dict = {"image": torch.from_numpy(hu), "spacing": vol["spacing"]}
    for key in ("mask", "brain"):
        if key in vol:
            m = np.asarray(vol[key][:, :, k])
            if m.dtype.kind == "f":
                check_finite(m, f"{vol['mask_path'] if key == 'mask' else 'brain mask'} slice {k + 1}")
            item[key] = torch.from_numpy(np.ascontiguousarray(tf.apply(m) > 0).astype(np.uint8))
    return item
