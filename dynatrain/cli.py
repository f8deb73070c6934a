"""The ``dynatrain`` command line: thin commands over the library.

Each command parses its options, calls one library function and hands the result
to a renderer. Heavy modules (NumPy, h5py, zarr, matplotlib) are imported inside
the commands so that ``dynatrain --help`` starts fast.

Exit codes: 0 success; 1 a check the user asked for failed; 2 bad usage or an
unreadable/invalid input (one line on stderr, ``--debug`` for the traceback);
130 interrupted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from dynatrain import defaults
from dynatrain.errors import DynatrainError

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

_DEBUG_ENV = "DYNATRAIN_DEBUG"


def _debug_enabled(ctx: click.Context) -> bool:
    return bool(ctx.find_root().meta.get("debug")) or os.environ.get(_DEBUG_ENV) == "1"


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().meta["debug"] = True


debug_option = click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_set_debug,
    help="Show the full traceback of an error.",
)


class _Main(click.Group):
    """Maps library errors to exit codes and one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("dynatrain: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader of our stdout went away (e.g. `| head`): stop quietly.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(EXIT_BROKEN_PIPE)
        except DynatrainError as exc:
            if _debug_enabled(ctx):
                raise
            click.echo(f"dynatrain: error: {exc}", err=True)
            ctx.exit(EXIT_BAD_INPUT)
        except Exception as exc:
            if _debug_enabled(ctx):
                raise
            message = str(exc).splitlines()[0] if str(exc) else ""
            click.echo(
                f"dynatrain: internal error: {type(exc).__name__}: {message}"
                " (run again with --debug for the traceback, and please report it)",
                err=True,
            )
            ctx.exit(EXIT_BAD_INPUT)


def _output_format(requested: str | None, *, terminal: str, pipe: str) -> str:
    """The requested format, else ``terminal`` when stdout is a terminal, else ``pipe``."""
    if requested:
        return requested
    return terminal if sys.stdout.isatty() else pipe


def _stdout_console() -> Any:
    from rich.console import Console

    return Console()


def _emit(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _warn(message: str) -> None:
    click.echo(f"dynatrain: warning: {message}", err=True)


def format_option(choices: tuple[str, ...], default_hint: str) -> Callable[..., Any]:
    """``--format`` with the given choices (default chosen at run time)."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(choices),
        default=None,
        help=f"Output format. Default: {default_hint}.",
    )


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dynatrain", prog_name="dynatrain")
@debug_option
def main() -> None:
    """Measure neural-network training as a dynamical system.

    Reads activation archives (HDF5 or Zarr) written checkpoint by checkpoint during
    training, and reports integration (DFA exponent of the layer signals),
    metastability (variability of cross-layer phase synchrony) and a dynamical
    stability index whose falling volatility flags convergence.

    Data goes to stdout, progress and warnings to stderr. Exit codes: 0 success,
    1 a requested check failed, 2 bad usage or invalid input, 130 interrupted.
    """


# -- archives ------------------------------------------------------------------------------------


@main.command()
@click.argument("run", type=click.Path(path_type=str))
@format_option(("table", "json"), "table on a terminal, json otherwise")
@debug_option
def inspect(run: str, output_format: str | None) -> None:
    """Show what an archive holds: layers, shapes, checkpoints, metrics, metadata."""
    from dynatrain.archive.reader import open_archive

    with open_archive(run) as archive:
        summary = archive.summary()
    if _output_format(output_format, terminal="table", pipe="json") == "json":
        from dynatrain.report.export import to_json

        _emit(to_json(summary) + "\n")
    else:
        from dynatrain.report.tables import render_inspect

        render_inspect(summary, _stdout_console())


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=str))
@debug_option
def validate(runs: tuple[str, ...]) -> None:
    """Check archives against the format, reading every stored value once.

    Prints one line per archive (ok) or per problem; exits 2 if any archive is invalid.
    """
    from dynatrain.archive.validate import validate_archive
    from dynatrain.report.tables import render_validation

    console = _stdout_console()
    all_valid = True
    for run in runs:
        report = validate_archive(run)
        render_validation(report, console)
        all_valid &= report.valid
    if not all_valid:
        sys.exit(EXIT_BAD_INPUT)


@main.command()
@click.argument("run", type=click.Path(path_type=str))
@click.option(
    "--reduce",
    type=click.Choice(defaults.REDUCTIONS),
    default=defaults.REDUCE,
    show_default=True,
    help="Reduction of each checkpoint's activations to one number per layer.",
)
@click.option(
    "--layers",
    "layer_patterns",
    multiple=True,
    metavar="NAME|GLOB",
    help="Only these layers (repeatable; shell globs allowed).",
)
@click.option(
    "--epochs",
    "epoch_range",
    metavar="START:END",
    help="Only checkpoints whose epoch is in this closed range.",
)
@format_option(("csv", "json"), "csv")
@debug_option
def signals(
    run: str,
    reduce: str,
    layer_patterns: tuple[str, ...],
    epoch_range: str | None,
    output_format: str | None,
) -> None:
    """Print the layer x checkpoint signal matrix (CSV: epoch,<layer>,...)."""
    from dynatrain.report.export import to_csv, to_json
    from dynatrain.signals import parse_epoch_range, read_signals

    result = read_signals(
        run, reduce=reduce, layers=layer_patterns or None, epochs=parse_epoch_range(epoch_range)
    )
    for excluded in result.excluded:
        _warn(f"{run}: layer {excluded.name!r} left out: {excluded.reason}")
    if (output_format or "csv") == "csv":
        columns = ["epoch", *result.layer_names]
        rows = [
            {"epoch": epoch, **dict(zip(result.layer_names, result.values[:, t], strict=True))}
            for t, epoch in enumerate(result.epochs)
        ]
        _emit(to_csv(rows, columns))
    else:
        _emit(
            to_json(
                {
                    "run": run,
                    "reduce": reduce,
                    "layers": list(result.layer_names),
                    "epoch": result.epochs,
                    "signals": dict(zip(result.layer_names, result.values, strict=True)),
                    "metrics": result.metrics,
                    "excluded_layers": [
                        {"name": e.name, "reason": e.reason} for e in result.excluded
                    ],
                }
            )
            + "\n"
        )


if __name__ == "__main__":  # pragma: no cover
    main()
