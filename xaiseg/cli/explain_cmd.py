"""``xaiseg explain``: one method's maps for one scan, on the scan's grid."""
from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--checkpoint", type=click.Path(), default=None, help="Classifier checkpoint folder (default: the shipped tiny phantom classifier).")
@click.option("--input", "input_", type=click.Path(), required=True, help="CT scan (NIfTI, HU).")
@click.option("--segmenter", type=click.Path(), default=None, help="A segmenter folder (xaiseg train --task segmentation) instead of a classifier: writes its lesion probabilities, brain-masked.")
@click.option("--subject", default=None, help="With --segmenter: the scan's subject id, so a scan the segmenter trained on is scored by the fold that held it out (default: the file name without .nii/.nii.gz, as the data loaders name subjects).")
@click.option("--method", default=None, help="Attribution method of the classifier (see `xaiseg methods`; default hgi-sam), optionally with options as JSON, e.g. 'hgi-sam{\"stages\":[0,1,2,3]}'.")
@click.option("--out", type=click.Path(), required=True, help="Output NIfTI (same grid and affine as --input).")
@click.option("--brain-mask", default="auto", show_default=True, help="auto (computed from HU) | none | a brain-mask NIfTI on the scan's grid.")
@click.option("--device", default="auto", show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists (never an input file).")
def explain(checkpoint, segmenter, subject, input_, method, out, brain_mask, device, batch_size, overwrite) -> None:
    """Write the maps of every axial slice of a scan as a NIfTI volume in [0, 1].

    The maps are made exactly as in `xaiseg benchmark` (back on the original slice grid,
    multiplied by the brain mask, min-max normalised per slice) and saved with the input's
    affine and header, so they overlay the scan in 3D Slicer or ITK-SNAP. --out is never an
    input (refused up front) and an existing file is replaced only with --overwrite.

    With --segmenter, the maps are a fully supervised segmenter's lesion probabilities, made as
    its rows in `xaiseg benchmark` (brain-masked, not renormalised), each slice from the models
    that never saw --subject (a training subject of every model is a one-line error).
    """
    from ..errors import ConfigError
    from ..benchmark.defaults import resolve_checkpoint
    from ..benchmark.explain import explain_scan

    from ..training import maps_warning, read_config

    if segmenter is not None:
        if checkpoint is not None:
            raise ConfigError("--checkpoint (a classifier) and --segmenter are two sources of maps; give one")
        ckpt = None
        if not Path(segmenter).expanduser().exists():
            raise ConfigError(f"--segmenter {segmenter}: no such folder")
    else:
        if subject is not None:
            raise ConfigError("--subject applies to --segmenter (which fold may score the scan), not to a classifier")
        ckpt = resolve_checkpoint(checkpoint)
        warning = maps_warning(read_config(ckpt))  # a classifier near chance: its maps show contrast
        if warning:
            click.echo(warning, err=True)
    _vol, path = explain_scan(ckpt, input_, method=method if segmenter is not None else (method or "hgi-sam"), out=out,
                              brain_mask=brain_mask, device=device, batch_size=batch_size, overwrite=overwrite,
                              segmenter=segmenter, subject=subject)
    click.echo(f"wrote {path}")
