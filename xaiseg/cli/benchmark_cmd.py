"""``xaiseg benchmark``: score every method's maps against ground-truth masks.

Its options are the command-line fields of :class:`xaiseg.benchmark.BenchmarkConfig` (name,
default and help are written there, once); this module only maps them onto click.
"""
from __future__ import annotations

from dataclasses import Field
from typing import Any, Callable

import click

from ..benchmark.checkpoints import TARGET_CHOICES
from ..benchmark.config import LAYOUT_CHOICES, BenchmarkConfig

_TYPES: dict[str, Any] = {"path": click.Path(), "paths": click.Path(), "int": int, "float": float,
                          "layout": click.Choice(LAYOUT_CHOICES), "targets": click.Choice(TARGET_CHOICES)}


def _flag(f: Field) -> str:
    return f.metadata.get("cli") or "--" + f.name.replace("_", "-")


def _option(f: Field) -> Callable:
    meta = f.metadata
    kw: dict[str, Any] = {"help": meta["help"] or None}
    if meta["kind"] == "flag":
        kw["is_flag"] = True  # a flag named in "cli" (--no-figures) sets the field to the opposite of its default
    elif meta["kind"] == "paths":  # repeatable; none given: the field's default
        kw.update(multiple=True, type=_TYPES["paths"])
    else:
        kw.update(default=f.default, show_default=meta["show_default"])
        if meta["kind"] in _TYPES:
            kw["type"] = _TYPES[meta["kind"]]
    decls = [_flag(f)] if meta.get("cli") else [_flag(f), f.name]
    return click.option(*decls, **kw)


def config_options(fn: Callable) -> Callable:
    """Decorate a click command with one option per command-line field of BenchmarkConfig."""
    for f in reversed(BenchmarkConfig.cli_fields()):
        fn = _option(f)(fn)
    return fn


def config_from_cli(values: dict[str, Any]) -> BenchmarkConfig:
    """click's parsed values (keyed like the option names) → the validated config."""
    kwargs: dict[str, Any] = {}
    for f in BenchmarkConfig.cli_fields():
        flag = _flag(f)
        if f.metadata.get("cli"):
            given = values[flag.lstrip("-").replace("-", "_")]
            kwargs[f.name] = (not f.default) if given else f.default
        elif f.metadata["kind"] == "paths":
            kwargs[f.name] = list(values[f.name]) or f.default
        else:
            kwargs[f.name] = values[f.name]
    return BenchmarkConfig(**kwargs)


@click.command()
@config_options
def benchmark(**values: Any) -> None:
    """Run every method on the same slices, threshold the maps and score them.

    With no options: the built-in head-CT phantom, the shipped tiny Swin classifier, the
    default methods and grid-calibrated thresholds. Writes summary.csv/json, slices.csv,
    figures/, run.json (and maps/ with --save-maps) to --out and prints the summary table.
    """
    import time

    from ..benchmark import run
    from ..data.base import quiet_skip_warnings, skipped_summary
    from ..distributed import current_world

    t0 = time.perf_counter()
    cfg = config_from_cli(values)
    with quiet_skip_warnings():  # the line below says what --skip-bad skipped
        result = run(cfg)
    if not current_world().is_main:  # under torchrun rank 0 alone prints
        return
    skipped = result.config.get("skipped") or []
    if skipped:
        click.echo(skipped_summary(skipped), err=True)
    click.echo("")
    click.echo(result.table())
    if result.timing:
        from ..benchmark.timing import format_timing

        click.echo(f"\ntime: {format_timing(result.timing)}")
    click.echo(f"\nresults in {result.out}  ({time.perf_counter() - t0:.0f} s)")
