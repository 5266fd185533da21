"""The ``xaiseg`` command line.

Sub-commands live in their own modules and are imported only when invoked, so ``xaiseg --help``
stays fast and a broken optional dependency only affects the command that needs it.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

import click

from .._version import __version__

# name -> "module:attribute"; a command appears once its module exists.
COMMANDS: dict[str, str] = {
    "methods": "xaiseg.cli.methods_cmd:methods",
    "phantom": "xaiseg.cli.phantom_cmd:phantom",
    "train": "xaiseg.cli.train_cmd:train",
    "benchmark": "xaiseg.cli.benchmark_cmd:benchmark",
    "explain": "xaiseg.cli.explain_cmd:explain",
}


def _user_errors() -> tuple[type[BaseException], ...]:
    from ..errors import XaisegError
    from ..registry import UnknownNameError

    return (XaisegError, UnknownNameError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


# click >= 8.2 raises this for a bare group call (older versions print the help themselves)
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n, ref in COMMANDS.items() if importlib.util.find_spec(ref.split(":")[0]) is not None)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        ref = COMMANDS.get(name)
        if ref is None or importlib.util.find_spec(ref.split(":")[0]) is None:
            return None
        module, attr = ref.split(":")
        return getattr(importlib.import_module(module), attr)

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS_IS_HELP as exc:  # bare `xaiseg`: the help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            # click prints usage, a hint and the error on four lines; we keep the rule of one line
            path = exc.ctx.command_path if exc.ctx is not None else "xaiseg"
            click.echo(f"Error: {exc.format_message()} (see '{path} --help')", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except Exception as exc:
            if os.environ.get("XAISEG_DEBUG") or not isinstance(exc, _user_errors()):
                raise
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise click.ClickException(msg) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="xaiseg")
def main() -> None:
    """xaiseg: turn explanations of image classifiers into segmentations and score them.

    The main job is `xaiseg benchmark`; with no arguments it runs on the built-in head-CT
    phantom. `xaiseg methods` lists every registered attribution method.
    """


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
