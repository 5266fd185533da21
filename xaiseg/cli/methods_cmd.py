"""``xaiseg methods``: list the registered attribution methods."""
from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def methods(as_json: bool) -> None:
    """List every registered attribution method.

    For each: its name (what --methods takes), a one-line description, the model families it
    supports (the installed adapters it can use: swin, swinv2, vit, hf-vit, hf-swin, ...; "any"
    for model-agnostic methods), whether it needs gradients, and the installed distribution that
    provides it. Methods come from the `xaiseg.methods` entry-point group and model families
    from `xaiseg.adapters`, so third-party plugins appear here once installed.
    """
    import warnings

    from ..registry import list_methods, method_info

    rows = []
    for name in list_methods():
        try:
            info = method_info(name)
        except Exception as exc:  # one broken plugin must not hide the others
            warnings.warn(f"method {name!r} could not be loaded: {exc}", RuntimeWarning, stacklevel=1)
            continue
        rows.append(
            {
                "name": info.name,
                "description": info.description,
                "architectures": list(info.architectures),
                "needs_gradients": info.needs_gradients,
                "distribution": info.distribution,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    header = ("NAME", "FAMILIES", "GRADIENTS", "PROVIDED BY", "DESCRIPTION")
    table = [header] + [
        (r["name"], ",".join(r["architectures"]) or "any", "yes" if r["needs_gradients"] else "no", r["distribution"], r["description"])
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4])
