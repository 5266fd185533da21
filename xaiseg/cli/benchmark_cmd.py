"""``xaiseg benchmark``: score every method's maps against ground-truth masks."""
from __future__ import annotations

import click


@click.command()
@click.option("--data", type=click.Path(), default=None, help="Data set folder (default: the built-in phantom, generated once into the cache).")
@click.option("--layout", type=click.Choice(["auto", "physionet", "phantom", "rsna", "folder"]), default="auto", show_default=True, help="Layout of --data (auto: guessed from its files).")
@click.option("--checkpoint", type=click.Path(), default=None, help="Classifier checkpoint folder (default: the shipped tiny phantom classifier).")
@click.option("--methods", default=None, help="Comma-separated method names (see `xaiseg methods`), each optionally with its "
              "options as a JSON object, e.g. 'hgi-sam,hgi-sam{\"stages\":[0,1,2,3]}'. Default: hgi-sam,swin-sam,gradcam,rollout,"
              "grad-rollout,saliency,centre-prior.")
@click.option("--threshold", default="grid", show_default=True, help="grid[:STEP] | otsu | mean | fixed:T | percentile:P.")
@click.option("--folds", type=int, default=5, show_default=True, help="Subject-wise folds for the grid threshold.")
@click.option("--brain-mask", default="auto", show_default=True, help="auto (the data set's brain masks, else computed from HU) | none | DIR of brain masks.")
@click.option("--out", type=click.Path(), default=None, help="Output folder (default: ./xaiseg-results/<timestamp>).")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out (same options).")
@click.option("--limit", type=int, default=None, help="Score only N slices, spread evenly over the data set.")
@click.option("--positives-only", is_flag=True, help="Only hemorrhage-positive slices (faster; no false-positive areas).")
@click.option("--negative-ratio", type=float, default=None, help="Score at most R negative slices per positive slice, spread evenly (default: all; 1 for the built-in phantom).")
@click.option("--save-maps", is_flag=True, help="Also write each method's maps as NIfTI volumes on the original grid.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for folds and stochastic methods.")
@click.option("--no-figures", is_flag=True, help="Skip the PNG figures.")
@click.option("--keep-cache", is_flag=True, help="Keep the per-batch map cache after a complete run.")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable or inconsistent files of --data (counted and "
              "reported) instead of stopping at the first with an error.")
def benchmark(data, layout, checkpoint, methods, threshold, folds, brain_mask, out, device, batch_size, resume,
              limit, positives_only, negative_ratio, save_maps, seed, no_figures, keep_cache, skip_bad) -> None:
    """Run every method on the same slices, threshold the maps and score them.

    With no options: the built-in head-CT phantom, the shipped tiny Swin classifier, the
    default methods and grid-calibrated thresholds. Writes summary.csv/json, slices.csv,
    figures/, run.json (and maps/ with --save-maps) to --out and prints the summary table.
    """
    import time

    from ..benchmark import run
    from ..data.base import quiet_skip_warnings, skipped_summary

    t0 = time.perf_counter()
    with quiet_skip_warnings():  # the line below says what --skip-bad skipped
        result = run(
            data=data, layout=layout, checkpoint=checkpoint, methods=methods, threshold=threshold, folds=folds,
            brain_mask=brain_mask, out=out, device=device, batch_size=batch_size, resume=resume, limit=limit,
            positives_only=positives_only, negative_ratio=negative_ratio, save_maps=save_maps, seed=seed, figures=not no_figures,
            keep_cache=keep_cache, skip_bad=skip_bad,
        )
    skipped = result.config.get("skipped") or []
    if skipped:
        click.echo(skipped_summary(skipped), err=True)
    click.echo("")
    click.echo(result.table())
    if result.timing:
        from ..benchmark.timing import format_timing

        click.echo(f"\ntime: {format_timing(result.timing)}")
    click.echo(f"\nresults in {result.out}  ({time.perf_counter() - t0:.0f} s)")
