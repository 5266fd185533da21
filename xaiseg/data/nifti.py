"""Reading NIfTI volumes slice by slice, with image and mask kept aligned.

Conventions (the same for every NIfTI layout):

- The **slice axis is the file's third voxel axis** (axis 2): slice number ``n`` in a label CSV
  is ``data[:, :, n - 1]``, as in PhysioNet CT-ICH. Volumes are not resampled.
- A mask (or brain mask) is brought into the image's voxel order through both files' affines:
  the mask-voxel -> image-voxel map ``inv(A_image) @ A_mask`` must be an axis permutation with
  flips that puts the mask's grid exactly on the image's (within 0.1 voxel at every corner of the
  grid), so a mask stored flipped or permuted still lands on the right voxels. Masks are never
  resampled: a mask rotated, scaled or shifted against its image (even by whole voxels) is a
  DataError saying so -- resample it onto the image grid first. A mask file without any
  orientation (qform and sform codes 0) is taken to be in the image's voxel order. After this
  the mask must have exactly the image's shape.
- Geometry that would make numbers lie is refused with a DataError: an image affine with NaN/Inf
  or a singular one (when the header says it is valid: qform/sform code > 0), and an in-plane
  pixel size (``pixdim``, as stored in the file) that is zero, negative or NaN -- nibabel would
  quietly read 0 as 1 mm.
- Each 2-D slice is shown in the radiological convention when the image's in-plane axes are
  left-right and antero-posterior (an axial volume): rows run anterior -> posterior, columns run
  from the patient's right to the patient's left. Other orientations (or an image without
  orientation) keep the voxel order: rows = axis 1, columns = axis 0.
- ``spacing`` is (row_mm, col_mm) from the header's voxel sizes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def nifti_stem(path: Path) -> str | None:
    """File name without ``.nii``/``.nii.gz``, or None if it is not a NIfTI file name."""
    name = path.name
    for suf in NIFTI_SUFFIXES:
        if name.lower().endswith(suf) and len(name) > len(suf):  # nibabel reads X.NII.GZ too
            return name[: -len(suf)]
    return None


def open_nifti(path: Path):
    """``nibabel.load`` with one-line errors (the pixel data is not read yet)."""
    import nibabel as nib

    from .files import regular_file

    regular_file(path, "NIfTI file")  # a FIFO would block nibabel forever
    log = logging.getLogger("nibabel.global")  # its header fix-ups ("setting 0 dims to 1"): we
    level = log.level  # check the stored values ourselves and say what is wrong in one line
    log.setLevel(logging.ERROR)
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for corrupt files
        raise DataError(f"{path}: not a readable NIfTI file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    finally:
        log.setLevel(level)
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


def checked_affine(img, path: Path) -> np.ndarray:
    """The voxel -> world affine, finite and invertible (a one-line DataError otherwise)."""
    aff = np.asarray(img.affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.isfinite(aff).all():
        raise DataError(f"{path}: the header's affine (qform/sform) has NaN or Inf values; fix the header "
                        "(or set qform_code and sform_code to 0 to use the voxel order)")
    if abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        raise DataError(f"{path}: the header's affine (qform/sform) is singular (a zero voxel size or "
                        "collapsed axes); fix the header")
    return aff


def check_image_geometry(img, path: Path) -> None:
    """An image's affine (if the header claims one) and its in-plane pixel size, as stored."""
    if _has_orientation(img):
        checked_affine(img, path)
    raw = _raw_pixdim(img, path)
    n_plane = min(2, len(img.shape))
    bad = [float(v) for v in raw[1 : 1 + n_plane] if not (np.isfinite(v) and v > 0)]
    if bad:
        raise DataError(f"{path}: pixel size (pixdim) {tuple(float(v) for v in raw[1 : 1 + n_plane])} mm is not "
                        "positive and finite; fix the header's voxel sizes")


def _raw_pixdim(img, path: Path) -> np.ndarray:
    """``pixdim`` as the file stores it: nibabel's loader replaces 0 by 1 and negatives by their
    absolute value, which would hide a broken header."""
    from nibabel.openers import ImageOpener

    try:
        with ImageOpener(str(path)) as fh:
            hdr = type(img.header).from_fileobj(fh, check=False)
        return np.asarray(hdr["pixdim"], dtype=np.float64)
    except Exception:  # not a single-file NIfTI (e.g. .hdr/.img): what nibabel read
        return np.asarray(img.header["pixdim"], dtype=np.float64)


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


_GRID_TOL = 0.1  # voxels: header round-off, never a real misregistration


def mask_to_image(img, ref_img, path: Path, ref_path: Path) -> np.ndarray | None:
    """The ``nibabel.orientations`` transform (per mask axis: image axis, flip) that puts the
    mask's voxels on its image's, or None when either file has no orientation (voxel order).
    Anything but an exact permutation/flip of the grid is a DataError (see the module doc)."""
    if not (_has_orientation(img) and _has_orientation(ref_img)):
        return None
    t = np.linalg.inv(checked_affine(ref_img, ref_path)) @ checked_affine(img, path)  # mask voxel -> image voxel
    rot, shift = t[:3, :3], t[:3, 3]
    perm = np.round(rot)
    shape = np.array(volume_shape(img, path), dtype=np.float64)
    is_perm = (np.abs(perm).sum(0) == 1).all() and (np.abs(perm).sum(1) == 1).all()
    # where each mask corner lands, against where it would land if the map were exact
    corners = np.array(np.meshgrid(*[[0.0, n - 1] for n in shape], indexing="ij")).reshape(3, -1)
    if not is_perm or np.abs((rot - perm) @ corners).max() > _GRID_TOL:
        raise DataError(f"{path}: its affine is rotated or scaled against its image {ref_path.name} (not a flip or "
                        "permutation of the image's axes); resample the mask onto the image grid (or, if it is on "
                        "the image's voxels under a wrong header, give it the image's affine)")
    tf = np.array([[int(np.argmax(np.abs(perm[:, j]))), int(perm[:, j].sum())] for j in range(3)])
    # a flipped mask axis of n voxels starts at image voxel n - 1, an unflipped one at 0
    expected = np.zeros(3)
    for j, (axis, flip) in enumerate(tf):
        expected[axis] = shape[j] - 1 if flip < 0 else 0.0
    off = shift - expected
    if np.abs(off).max() > _GRID_TOL:
        raise DataError(f"{path}: its grid is shifted by {tuple(round(float(v), 2) for v in off)} voxels against its "
                        f"image {ref_path.name} (the origins differ); resample the mask onto the image grid (or "
                        "give it the image's affine if only its header is wrong)")
    return tf


def into_image_order(arr: np.ndarray, img, ref_img, path: Path, ref_path: Path) -> np.ndarray:
    """Flip/permute a mask's voxel array into its image's voxel order (by both affines)."""
    tf = mask_to_image(img, ref_img, path, ref_path)
    if tf is not None and not np.array_equal(tf, [[0, 1], [1, 1], [2, 1]]):
        from nibabel import orientations as ornt

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
    check_image_geometry(img, image)
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
