"""``xaiseg phantom OUT``: write the synthetic head-CT data set (PhysioNet CT-ICH layout)."""
from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--subjects", default=20, show_default=True, type=click.IntRange(1, 999), help="Number of heads.")
@click.option("--slices", default=32, show_default=True, type=click.IntRange(1), help="Axial slices per head.")
@click.option("--size", default=512, show_default=True, type=click.IntRange(16), help="In-plane size (pixels).")
@click.option(
    "--prevalence",
    default=0.6,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Fraction of heads with hemorrhage.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (same seed, same data).")
@click.option("--acquisition", type=click.Choice(["random", "clean"]), default="random", show_default=True,
              help="random: one randomised scan per head (field of view, artefacts, noise, HU drift, 8-bit export; "
                   "docs/data.md); clean: every head scanned alike.")
@click.option("--contact-sheet", is_flag=True, help="Also write contact_sheet.png (one tile per head).")
@click.option("--compress", is_flag=True, help="Write .nii.gz instead of .nii.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it holds a phantom written earlier (never any other folder).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def phantom(
    out: Path,
    subjects: int,
    slices: int,
    size: int,
    prevalence: float,
    seed: int,
    acquisition: str,
    contact_sheet: bool,
    compress: bool,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Write a synthetic non-contrast head CT data set with hemorrhage masks to OUT.

    The layout is PhysioNet CT-ICH 1.3.1 (ct_scans/NNN.nii in HU, masks/NNN.nii 0/255,
    hemorrhage_diagnosis_raw_ct.csv), plus brain_masks/ and phantom.json, so every xaiseg
    command that reads PhysioNet reads it. Deterministic given --seed. See docs/data.md.
    """
    from ..data.phantom_writer import write_phantom

    path = write_phantom(
        out,
        subjects=subjects,
        slices_per_subject=slices,
        size=size,
        prevalence=prevalence,
        seed=seed,
        contact_sheet=contact_sheet,
        progress=not quiet,
        overwrite=overwrite,
        compress=compress,
        acquisition=acquisition,
    )
    click.echo(f"wrote {subjects} subjects x {slices} slices ({size}x{size}) to {path}")
