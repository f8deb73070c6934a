"""The ``dynatrain`` command line: thin commands over the library.

Each command parses its options, calls one library function and hands the result
to a renderer. Heavy modules (NumPy, h5py, zarr, matplotlib) are imported inside
the commands so that ``dynatrain --help`` starts fast.

Exit codes: 0 success; 1 a check the user asked for failed; 2 bad usage or an
unreadable/invalid input (one line on stderr, ``--debug`` for the traceback);
130 interrupted.
"""

from __future__ import annotations

import errno
import functools
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
#: Errors of writing to stdout that are the destination's, not dynatrain's: no space,
#: file too large, over quota, I/O error.
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO})


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


def _say(message: str) -> None:
    """One line on stderr: credentials redacted, control characters shown as escapes."""
    from dynatrain._format import printable
    from dynatrain.archive.storage import redact

    click.echo(printable(redact(message)), err=True)


def _usage_error(exc: click.UsageError) -> None:
    """A usage error (an option's value, a missing argument) on one line, exit 2.

    Click's own (usage, a hint, the error) is four lines; `dynatrain` alone still
    shows the help.
    """
    if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):  # click >= 8.2
        raise exc  # the help, as asked
    where = exc.ctx.command_path if exc.ctx is not None else "dynatrain"
    _say(f"dynatrain: error: {exc.format_message()} (see '{where} --help')")
    sys.exit(exc.exit_code)


class _Main(click.Group):
    """Maps library errors to exit codes and one-line messages."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:  # `dynatrain --bogus`
            _usage_error(exc)
            raise  # unreachable: _usage_error exits

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            _usage_error(exc)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            _say("dynatrain: interrupted")
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader of our stdout went away (e.g. `| head`): stop quietly.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(EXIT_BROKEN_PIPE)
        except DynatrainError as exc:
            if _debug_enabled(ctx):
                raise
            _say(f"dynatrain: error: {exc}")
            ctx.exit(EXIT_BAD_INPUT)
        except OSError as exc:
            # Files are written through `writing`, which names them: an OSError left is the
            # output stream (`> /dev/full`, a full disk or quota behind a redirection).
            if _debug_enabled(ctx) or exc.errno not in _OUTPUT_ERRNOS:
                raise
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # the exit flush would fail again
            _say(f"dynatrain: error: cannot write the output: {exc.strerror}")
            ctx.exit(EXIT_BAD_INPUT)
        except Exception as exc:
            if _debug_enabled(ctx):
                raise
            message = str(exc).splitlines()[0] if str(exc) else ""
            _say(
                f"dynatrain: internal error: {type(exc).__name__}: {message}"
                " (run again with --debug for the traceback, and please report it)"
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


def _stderr_terminal() -> Any:
    """A rich console on stderr when stderr is a terminal (for progress), else None."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console

    return Console(stderr=True)


def _emit(text: str) -> None:
    from dynatrain.archive.storage import redact

    sys.stdout.write(redact(text))  # the data is redacted already: a second line of defence
    sys.stdout.flush()


def _warn(message: str) -> None:
    _say(f"dynatrain: warning: {message}")


def format_option(choices: tuple[str, ...], default_hint: str) -> Callable[..., Any]:
    """``--format`` with the given choices (default chosen at run time)."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(choices),
        default=None,
        help=f"Output format. Default: {default_hint}.",
    )


def _use_storage_options(
    ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, Any]:
    """Parse ``--storage-option`` and make it apply to every URL the command opens."""
    from dynatrain.archive.storage import parse_storage_options, use_storage_options

    options = parse_storage_options(values)
    ctx.with_resource(use_storage_options(options))
    return options


#: fsspec storage options, on every command that reads or writes archives.
storage_option = click.option(
    "--storage-option",
    "storage_options",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_use_storage_options,
    expose_value=False,
    help="fsspec storage option for archives given as URLs (s3://...), e.g."
    " endpoint_url=http://host:9000 or anon=true (repeatable; values that are"
    " credentials are never shown). Default: the environment (AWS_*, FSSPEC_*).",
)

#: Which data to read: shared by ``signals``, ``analyze`` and ``batch``.
reduce_option = click.option(
    "--reduce",
    type=click.Choice(defaults.REDUCTIONS),
    default=defaults.REDUCE,
    show_default=True,
    help="Reduction of each checkpoint's activations to one number per layer.",
)
layers_option = click.option(
    "--layers",
    "layer_patterns",
    multiple=True,
    metavar="NAME|GLOB",
    help="Only these layers (repeatable; shell globs allowed).",
)
epochs_option = click.option(
    "--epochs",
    "epoch_range",
    metavar="START:END",
    help="Only checkpoints whose epoch is in this closed range.",
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
@storage_option
@debug_option
def inspect(run: str, output_format: str | None) -> None:
    """Show what an archive holds: layers, shapes, checkpoints, metrics, metadata."""
    from dynatrain.archive.reader import open_archive
    from dynatrain.archive.storage import redact_data

    with open_archive(run) as archive:
        summary = redact_data(archive.summary())
    if _output_format(output_format, terminal="table", pipe="json") == "json":
        from dynatrain.report.export import to_json

        _emit(to_json(summary) + "\n")
    else:
        from dynatrain.report.tables import render_inspect

        render_inspect(summary, _stdout_console())


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=str))
@storage_option
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
        render_validation(_redacted_report(report), console)
        all_valid &= report.valid
    if not all_valid:
        sys.exit(EXIT_BAD_INPUT)


def _redacted_report(report: Any) -> Any:
    """A validation report with every credential redacted (it names the archive)."""
    import dataclasses

    from dynatrain.archive.storage import redact

    return dataclasses.replace(
        report,
        path=redact(report.path),
        problems=[redact(problem) for problem in report.problems],
        notes=[redact(note) for note in report.notes],
    )


@main.command()
@click.argument("run", type=click.Path(path_type=str))
@reduce_option
@layers_option
@epochs_option
@format_option(("csv", "json"), "csv")
@storage_option
@debug_option
def signals(
    run: str,
    reduce: str,
    layer_patterns: tuple[str, ...],
    epoch_range: str | None,
    output_format: str | None,
) -> None:
    """Print the layer x checkpoint signal matrix (CSV: epoch,<layer>,...)."""
    from dynatrain.archive.storage import redact
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
                    "run": redact(run),
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


# -- analysis --------------------------------------------------------------------------------------

#: The choices of ``--plot-format`` (``dynatrain.report._mpl.PLOT_FORMATS``, which
#: cannot be imported here without importing matplotlib; a test keeps them equal).
PLOT_FORMATS = ("png", "svg", "pdf")

plot_format_option = click.option(
    "--plot-format",
    type=click.Choice(PLOT_FORMATS),
    default=PLOT_FORMATS[0],
    show_default=True,
    help="File format of the figures.",
)


def _write_plots(
    data: dict[str, Any], directory: str, plot_format: str, *, inputs: list[str], option: str
) -> None:
    """Draw the figures of an analysis result (with ``detail``) into ``directory``.

    The figures' names come from the run (``<run id>-signals.png``): checked here, once
    the run id is known, against ``inputs`` as every output is.
    """
    from dynatrain.report.outputs import check_plot_dir, writing
    from dynatrain.report.plots import plot_analysis

    if isinstance(data, dict) and isinstance(data.get("run"), str):
        check_plot_dir(directory, inputs=inputs, fmt=plot_format, option=option, result=data)
    with writing(directory):
        paths = plot_analysis(data, directory, fmt=plot_format)
    names = ", ".join(os.path.basename(path) for path in paths)
    _say(f"dynatrain: wrote {len(paths)} figures to {directory}: {names}")


#: Thread pools of the numerical libraries, pinned to one thread by ``analyze``.
_BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _single_threaded_blas() -> None:
    """One BLAS thread for one run's analysis (unless the user set the variables).

    The analysis multiplies many small matrices, where threads cost more than they
    save (1.9x slower at 5 layers x 10,000 checkpoints).  The variables are read when
    NumPy loads, which the commands do lazily: setting them here leaves ``--help`` as
    fast as before.
    """
    if "numpy" not in sys.modules:
        for name in _BLAS_THREAD_VARIABLES:
            os.environ.setdefault(name, "1")


def analysis_options(
    command: Callable[..., Any], *, leave_out: tuple[str, ...] = ()
) -> Callable[..., Any]:
    """The options of one analysis, shared by ``analyze``, ``batch`` and ``watch``.

    ``leave_out`` names options (as spelt on the command line) a command does not take.
    """
    options = [
        reduce_option,
        click.option(
            "--transform",
            type=click.Choice(defaults.TRANSFORMS),
            default=defaults.TRANSFORM,
            show_default=True,
            help="Analyse checkpoint-to-checkpoint change (per epoch) or levels.",
        ),
        layers_option,
        epochs_option,
        click.option(
            "--min-scale",
            type=click.IntRange(min=3),
            default=defaults.MIN_SCALE,
            show_default=True,
            help="Smallest DFA scale, in checkpoints (at least --dfa-order + 2).",
        ),
        click.option(
            "--max-scale",
            type=click.IntRange(min=5),
            default=None,
            help="Largest DFA scale, in checkpoints (at least --min-scale + 2)."
            "  [default: points // 4]",
        ),
        click.option(
            "--n-scales",
            type=click.IntRange(min=3),
            default=defaults.N_SCALES,
            show_default=True,
            help="Log-spaced DFA scales (before rounding).",
        ),
        click.option(
            "--dfa-order",
            type=click.IntRange(min=1, max=3),
            default=defaults.DFA_ORDER,
            show_default=True,
            help="Order of the DFA detrending polynomial.",
        ),
        click.option(
            "--window",
            type=click.IntRange(min=4),
            default=None,
            help="Sliding window, in checkpoints.  [default: max(16, points // 4), above 64"
            " rounded down to a length whose prime factors are at most 11 (fast FFTs)]",
        ),
        click.option(
            "--window-step",
            type=click.IntRange(min=1),
            default=None,
            help="Checkpoints between window starts (the resolution of the converged"
            f" epoch).  [default: 1 up to {defaults.MAX_WINDOWS} windows, the smallest"
            f" step that leaves at most {defaults.MAX_WINDOWS} beyond]",
        ),
        click.option(
            "--vol-window",
            type=click.IntRange(min=2),
            default=defaults.VOL_WINDOW,
            show_default=True,
            help="Windows in each volatility (std of the DSI).",
        ),
        click.option(
            "--vol-threshold",
            type=click.FloatRange(0, 1),
            default=defaults.VOL_THRESHOLD,
            show_default=True,
            help="Converged below this fraction of peak volatility.",
        ),
        click.option(
            "--vol-patience",
            type=click.IntRange(min=1),
            default=defaults.VOL_PATIENCE,
            show_default=True,
            help="...for this many consecutive windows.",
        ),
        click.option(
            "--convergence-rule",
            type=click.Choice(defaults.CONVERGENCE_RULES),
            default=defaults.CONVERGENCE_RULE,
            show_default=True,
            help="Peak the threshold is taken from: the running peak of the windows so far"
            " (what a live watcher sees) or the whole run's (version 0.1).",
        ),
        click.option(
            "--phase-edge",
            type=click.Choice(defaults.PHASE_EDGES),
            default=defaults.PHASE_EDGE,
            show_default=True,
            help="Edge handling of the Hilbert phases: extend each series at both ends by"
            " an AR forecast, or none (circular: distorted near the ends).",
        ),
        click.option(
            "--metric",
            default=None,
            help="Accuracy metric for the plateau.  [default: first of "
            + ", ".join(defaults.METRIC_CANDIDATES)
            + "]",
        ),
        click.option(
            "--surrogates",
            type=click.IntRange(0, defaults.MAX_SURROGATES),
            default=defaults.SURROGATES,
            show_default=True,
            help="Surrogates per test (0: no p-values; the style label and the convergence"
            " are then untested).",
        ),
        click.option(
            "--convergence-surrogates",
            type=click.IntRange(min=0),
            default=None,
            help="Most surrogate runs for the convergence p-value; drawing stops once the"
            " p-value cannot reach the significance level.  [default: the"
            f" smaller of --surrogates and {defaults.CONVERGENCE_SURROGATES}]",
        ),
        click.option(
            "--significance-level",
            type=click.FloatRange(0, 1, min_open=True, max_open=True),
            default=defaults.SIGNIFICANCE_LEVEL,
            show_default=True,
            help="A surrogate p-value at or below it makes the style labelled and the"
            " convergence an early warning.",
        ),
        click.option(
            "--seed",
            type=click.IntRange(min=0),
            default=defaults.SEED,
            show_default=True,
            help="Seed of the surrogates.",
        ),
        click.option(
            "--strict",
            is_flag=True,
            help="Fail on non-finite values instead of analysing the finite prefix.",
        ),
    ]
    for option in reversed(options):
        probe = option(lambda: None)
        names = [param.opts[0] for param in getattr(probe, "__click_params__", [])]
        if not set(names) & set(leave_out):
            command = option(command)
    return command


def _runs_text(runs: list[str], shown: int = 3) -> str:
    """``a.h5`` for one run; ``3 runs (a.h5, b.h5, c.h5)``, ``12 runs (a.h5, b.h5, c.h5, ...)``."""
    if len(runs) == 1:
        return runs[0]
    names = ", ".join(runs[:shown]) + (", ..." if len(runs) > shown else "")
    return f"{len(runs)} runs ({names})"


def _settings(options: dict[str, Any]) -> Any:
    """Build :class:`~dynatrain.analysis.Settings` from the parsed analysis options."""
    from dynatrain.analysis import Settings

    return Settings(
        reduce=options.pop("reduce"),
        transform=options.pop("transform"),
        layers=options.pop("layer_patterns") or None,
        epochs=options.pop("epoch_range", None),
        min_scale=options.pop("min_scale"),
        max_scale=options.pop("max_scale"),
        n_scales=options.pop("n_scales"),
        dfa_order=options.pop("dfa_order"),
        window=options.pop("window"),
        window_step=options.pop("window_step"),
        vol_window=options.pop("vol_window"),
        vol_threshold=options.pop("vol_threshold"),
        vol_patience=options.pop("vol_patience"),
        convergence_rule=options.pop("convergence_rule", defaults.CONVERGENCE_RULE),
        phase_edge=options.pop("phase_edge", defaults.PHASE_EDGE),
        metric=options.pop("metric"),
        surrogates=options.pop("surrogates"),
        convergence_surrogates=options.pop("convergence_surrogates"),
        significance_level=options.pop("significance_level"),
        seed=options.pop("seed"),
        strict=options.pop("strict"),
    )


@main.command()
@click.argument("run", type=click.Path(path_type=str))
@analysis_options
@format_option(("table", "json", "jsonl", "csv", "markdown"), "table on a terminal, json otherwise")
@click.option(
    "--detail",
    is_flag=True,
    help="JSON: add the analysed series and DFA fluctuations (what the plots need).",
)
@click.option(
    "--fail-if-not-converged", is_flag=True, help="Exit 1 if the stability index never converged."
)
@click.option(
    "--plot",
    "plot_dir",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    metavar="DIR",
    help="Also write the figures (signals, dfa, kuramoto, stability, style) to DIR.",
)
@plot_format_option
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Threads for the surrogates and windows (the results are the same for any N)."
    f"  [default: the cores available, at most {defaults.MAX_ANALYSIS_THREADS}]",
)
@storage_option
@debug_option
def analyze(
    run: str,
    output_format: str | None,
    detail: bool,
    fail_if_not_converged: bool,
    plot_dir: str | None,
    plot_format: str,
    threads: int | None,
    **options: Any,
) -> None:
    """Measure one training run: integration, metastability, stability index, convergence."""
    _single_threaded_blas()
    from dynatrain.analysis import analyze as analyze_run
    from dynatrain.archive.storage import redact, redact_data
    from dynatrain.report import export

    settings = _settings(options)
    if plot_dir is not None:  # refused before the analysis, not after it
        from dynatrain.report.outputs import check_plot_dir

        check_plot_dir(plot_dir, inputs=[run], fmt=plot_format, option="--plot")
    from dynatrain.report.progress import analysis_status

    with analysis_status(redact(run), _stderr_terminal()) as progress:
        result = analyze_run(
            run, settings, threads=threads or defaults.default_threads(), progress=progress
        )
    for warning in result.warnings:
        _warn(f"{run}: {warning}")
    data = redact_data(result.to_dict(detail=detail))
    output_format = _output_format(output_format, terminal="table", pipe="json")
    if output_format == "json":
        _emit(export.to_json(data) + "\n")
    elif output_format == "jsonl":
        _emit(export.to_jsonl([data]))
    elif output_format == "csv":
        from dynatrain._plain import run_columns

        row = export.scalar_row(data)
        _emit(export.to_csv([row], run_columns([row])))
    elif output_format == "markdown":
        from dynatrain.report.tables import analysis_markdown

        _emit(analysis_markdown(export.json_ready(data)))
    else:
        from dynatrain.report.tables import render_analysis

        render_analysis(export.json_ready(data), _stdout_console())
    if plot_dir is not None:
        # Plot the JSON form, so `dynatrain plot` on saved JSON draws the same bytes.
        _write_plots(
            redact_data(result.to_dict(detail=True)),
            plot_dir,
            plot_format,
            inputs=[run],
            option="--plot",
        )
    if fail_if_not_converged and result.convergence_epoch is None:
        _warn(f"{run}: the stability index did not converge (--fail-if-not-converged)")
        sys.exit(EXIT_CHECK_FAILED)


#: The choices of ``watch --until`` (``dynatrain.watch.UNTIL``, not imported here: it
#: imports NumPy; a test keeps them equal).
WATCH_UNTIL = ("converged", "complete")


@main.command()
@click.argument("run", type=click.Path(path_type=str))
@functools.partial(analysis_options, leave_out=("--epochs", "--convergence-rule"))
@format_option(("panel", "jsonl"), "panel on a terminal, jsonl otherwise")
@click.option(
    "--until",
    type=click.Choice(WATCH_UNTIL),
    default=WATCH_UNTIL[0],
    show_default=True,
    help="Stop when the stability index has converged, or follow the run to its end.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Give up (exit 1) after SECONDS without a new checkpoint.  [default: wait as long"
    " as the writer holds the archive]",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.01),
    default=0.25,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between two looks at the archive.",
)
@click.option(
    "--max-p",
    type=click.FloatRange(0, 1, min_open=True),
    default=None,
    metavar="P",
    help="With --until converged: count a convergence only if its surrogate p-value is at"
    " most P.  [default: the rule's decision, its p-value reported]",
)
@storage_option
@debug_option
def watch(
    run: str,
    output_format: str | None,
    until: str,
    timeout: float | None,
    interval: float,
    max_p: float | None,
    **options: Any,
) -> None:
    """Follow a run while it trains: one report per new checkpoint.

    RUN is an archive a training job is writing (HDF5 in SWMR mode, or Zarr) or has
    written. Each new checkpoint updates the running integration and metastability,
    the newest window's stability index and volatility, and the causal convergence;
    piped, one JSON object per checkpoint (and a last one, "event": "end", that says
    why the watch ended), at a terminal a live panel.

    The windows must be known before the run ends: --window (and --window-step), else
    the archive's expected_checkpoints, else (a writer already gone) the run's length.
    The run is complete when it holds its expected_checkpoints or its writer closed
    it. Exit 0 when the --until condition is met; 1 when the run ended (or the writer
    went away, or --timeout passed) without it; 2 on bad input; 130 on Ctrl-C.
    """
    _single_threaded_blas()
    from dynatrain.report import export
    from dynatrain.watch import watch as watch_run

    settings = _settings(options)
    output_format = _output_format(output_format, terminal="panel", pipe="jsonl")
    surrogates = min(settings.surrogates, defaults.CONVERGENCE_SURROGATES)
    if settings.convergence_surrogates is not None:
        surrogates = settings.convergence_surrogates

    def started(follower: Any) -> None:
        for warning in follower.warnings:
            _warn(f"{run}: {warning}")

    if output_format == "jsonl":
        end = watch_run(
            run,
            settings,
            until=until,
            timeout=timeout,
            interval=interval,
            max_p=max_p,
            on_event=lambda event: _emit(export.to_jsonl([event])),
            on_start=started,
        )
        _emit(export.to_jsonl([end.to_dict()]))
    else:
        from rich.live import Live

        from dynatrain.report.watch_panel import watch_panel

        console = _stdout_console()
        with Live(console=console, auto_refresh=False, transient=False) as live:
            latest_metrics: dict[str, Any] = {}

            def show(event: dict[str, Any]) -> None:
                latest_metrics.update(event.get("metrics") or {})
                event = {**event, "metrics": latest_metrics}
                live.update(watch_panel(event, surrogates=surrogates), refresh=True)

            end = watch_run(
                run,
                settings,
                until=until,
                timeout=timeout,
                interval=interval,
                max_p=max_p,
                on_event=show,
                on_start=started,
            )
            if end.status is not None:
                show(end.to_dict())
    _say(f"dynatrain: watch: {end.message}")
    if end.exit_code:
        sys.exit(end.exit_code)


@main.command()
@click.argument("result_file", metavar="RESULT.json", type=click.Path(path_type=str))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    metavar="DIR",
    help="Directory to write the figures to.",
)
@plot_format_option
@debug_option
def plot(result_file: str, out_dir: str, plot_format: str) -> None:
    """Redraw the figures of an analysis from its JSON (`-` reads stdin).

    RESULT.json is what `dynatrain analyze RUN --format json --detail` printed; the
    figures are the ones `analyze --plot` draws, without analysing again.
    """
    import json

    from dynatrain.errors import InputError

    try:
        if result_file == "-":
            text = sys.stdin.read()
        else:
            with open(result_file, encoding="utf-8") as stream:
                text = stream.read()
        data = json.loads(text)
    except OSError as exc:
        raise InputError(f"{result_file}: cannot read: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise InputError(f"{result_file}: not a JSON document: {exc}") from exc
    except RecursionError as exc:
        raise InputError(f"{result_file}: not a JSON document: nested too deeply") from exc
    from dynatrain.report.outputs import check_plot_dir

    # Neither the JSON nor the archive it was measured on is written over.
    archive = data.get("run") if isinstance(data, dict) else None
    named = data if isinstance(archive, str) else None
    if result_file != "-":
        check_plot_dir(
            out_dir,
            inputs=[result_file],
            fmt=plot_format,
            option="--out",
            kind="file",
            result=named,
        )
    if isinstance(archive, str):
        check_plot_dir(out_dir, inputs=[archive], fmt=plot_format, option="--out", result=named)
    try:
        _write_plots(
            data,
            out_dir,
            plot_format,
            inputs=[archive] if isinstance(archive, str) else [],
            option="--out",
        )
    except InputError as exc:
        raise InputError(f"{result_file}: {exc}") from exc


# -- many runs -------------------------------------------------------------------------------------


def _split_keys(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, ...]:
    return tuple(key.strip() for key in (value or "").split(",") if key.strip())


@main.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@analysis_options
@format_option(("table", "jsonl", "csv", "markdown"), "table on a terminal, jsonl otherwise")
@click.option(
    "--group-by",
    metavar="KEY[,KEY]",
    callback=_split_keys,
    help="Group the runs by these metadata keys; summarise and compare the groups.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Runs analysed at once (worker processes; 1: in this process).  [default: cores]",
)
@click.option(
    "--scheduler",
    type=click.Choice(["local", "dask"]),
    default=None,
    help="Where the analyses run.  [default: local, or dask with --dask-address]",
)
@click.option(
    "--dask-address",
    metavar="tcp://HOST:PORT",
    help="Dask scheduler to run on (default: a local cluster of --jobs workers).",
)
@click.option(
    "-o",
    "--output",
    "report_dir",
    type=click.Path(file_okay=False, path_type=str),
    metavar="DIR",
    help="Also write a report folder: CSVs, JSON, figures and a self-contained report.html.",
)
@click.option("--force", is_flag=True, help="Write the report into a non-empty DIR.")
@click.option(
    "--columns",
    metavar="all|summary|NAME,...",
    default=None,
    help="--format csv: every field (all), the summary (run id, group keys, measures,"
    " convergence), or the columns named.  [default: all]",
)
@click.option(
    "--groups-json",
    type=click.Path(dir_okay=False, path_type=str),
    metavar="FILE",
    help="Also write the group summary and comparisons as JSON to FILE.",
)
@click.option(
    "--fail-if-not-converged",
    is_flag=True,
    help="Exit 1 if the stability index of a run never converged (2 if a run failed).",
)
@click.option(
    "-0",
    "--null",
    is_flag=True,
    help="Paths on stdin (-) are separated by NUL, as find -print0 writes them.",
)
@storage_option
@debug_option
def batch(
    runs: tuple[str, ...],
    output_format: str | None,
    group_by: tuple[str, ...],
    jobs: int | None,
    scheduler: str | None,
    dask_address: str | None,
    report_dir: str | None,
    force: bool,
    groups_json: str | None,
    columns: str | None,
    fail_if_not_converged: bool,
    null: bool,
    **options: Any,
) -> None:
    """Analyse many runs (one row each) and compare groups of runs.

    RUN is an archive, a glob (quote it to let dynatrain expand it), a directory
    (searched for .h5, .hdf5 and .zarr) or - (paths from stdin, one a line; with -0,
    NUL-separated). URLs too: s3://bucket/sweep/ is searched and
    's3://bucket/sweep/**/*.zarr' expanded in the bucket; each run is read where it
    is analysed (a Dask worker reads its own runs from the bucket). The analysis
    options of analyze apply to every run (for one run's --detail and figures, use
    analyze). A run that fails keeps its row with its error and the
    others go on; the exit code is then 2. No output may be, or lie inside, an input.
    """
    import functools
    from dataclasses import asdict

    from rich.console import Console

    from dynatrain import __version__
    from dynatrain import batch as batch_lib
    from dynatrain.archive.storage import current_storage_options
    from dynatrain.report import batch_report, export
    from dynatrain.report.outputs import check_output_file

    settings = _settings(options)
    storage_options = current_storage_options()  # --storage-option: for listings and workers
    paths = batch_lib.collect_runs(
        runs, stdin=sys.stdin, null=null, storage_options=storage_options
    )
    # Every output and the grouping keys are checked before any run is analysed.
    if groups_json is not None:
        check_output_file(groups_json, inputs=paths, option="--groups-json")
    if report_dir is not None:
        batch_report.check_report_dir(report_dir, force=force, inputs=paths)
    if group_by:
        batch_lib.check_group_keys(paths, group_by)
    output_format = _output_format(output_format, terminal="table", pipe="jsonl")
    if columns is not None and output_format != "csv":
        raise click.UsageError("--columns chooses the columns of --format csv")
    records = []
    # With a report folder, each run's JSON keeps the detail its figures are drawn from
    # (`dynatrain plot DIR/runs/<run>.json`): written as it comes, then dropped.
    run_files = batch_report.RunFiles(report_dir) if report_dir is not None else None
    task = functools.partial(batch_lib.analyze_or_error, detail=run_files is not None)
    progress_console = Console(stderr=True) if sys.stderr.isatty() else None
    with batch_report.batch_progress(len(paths), progress_console) as advance:
        for record in batch_lib.iter_analyses(
            paths,
            settings,
            jobs=jobs,
            scheduler=scheduler or ("dask" if dask_address else "local"),
            dask_address=dask_address,
            on_done=advance,
            task=task,
            storage_options=storage_options,
        ):
            if run_files is not None:
                run_files.write(record)
                record.pop("detail", None)
            records.append(record)
            if output_format == "jsonl":  # streamed: a line as soon as its run is done
                _emit(export.to_jsonl([record]))
    # A warning shared by several runs (e.g. an untested style at --surrogates 0) is said
    # once, with the runs it concerns, not once per run.
    warned: dict[str, list[str]] = {}
    for record in records:
        for warning in record.get("warnings", ()):
            warned.setdefault(warning, []).append(record["run"])
    for warning, warned_runs in warned.items():
        _warn(f"{_runs_text(warned_runs)}: {warning}")
    for record in records:
        if "error" in record:
            where = "" if record["error"].startswith(record["run"]) else f"{record['run']}: "
            _say(f"dynatrain: error: {where}{record['error']}")
    summary = batch_lib.group_summary(records, group_by)
    for warning in summary.warnings:
        _warn(warning)

    if output_format == "csv":
        chosen = batch_report.csv_columns(records, summary, columns or "all")
        _emit(batch_report.runs_csv(records, summary, chosen))
    elif output_format == "markdown":
        _emit(batch_report.batch_markdown(records, summary))
    elif output_format == "table":
        batch_report.render_batch(records, summary, _stdout_console())
    if groups_json is not None:
        batch_report.write_groups_json(groups_json, summary)
    if report_dir is not None:
        batch_report.write_report(
            report_dir,
            records,
            summary,
            asdict(settings),
            version=__version__,
            force=force,
            run_files=run_files,
        )
        _say(f"dynatrain: wrote the report to {report_dir}")
    unconverged = batch_lib.unconverged_runs(records) if fail_if_not_converged else []
    for run in unconverged:
        _warn(f"{run}: the stability index did not converge (--fail-if-not-converged)")
    if any("error" in record for record in records):
        sys.exit(EXIT_BAD_INPUT)  # a failed run outranks a failed check
    if unconverged:
        sys.exit(EXIT_CHECK_FAILED)


# -- synthetic data --------------------------------------------------------------------------------


def _parse_meta(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict:
    meta: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE")
        for convert in (int, float):
            try:
                meta[key] = convert(value)
                break
            except ValueError:
                continue
        else:
            meta[key] = value
    return meta


_SIMULATE_HELP = """Write a synthetic activation archive with planted properties.

OUT ends in .h5 or .hdf5 (an HDF5 file) or .zarr (a Zarr store); missing folders
are created. An existing OUT is replaced only with --force.

\b
What --kind plants:
  training     drift then settle: a shared, persistent drift while the layers
               learn, independent noise after; accuracy rises and plateaus
  hurst        each layer's change is fractional Gaussian noise of Hurst
               exponent H (integration ~ H)
  oscillators  the layers' changes oscillate: phase-locked, independent, or
               switching between the two (metastability)

At every checkpoint a layer holds SAMPLES x FEATURES activations whose mean is the
planted signal (--reduce mean recovers it).
"""


@main.command(help=_SIMULATE_HELP, short_help="Write a synthetic archive with planted properties.")
@click.argument("out", type=click.Path(path_type=str))
@click.option(
    "--kind",
    type=click.Choice(["training", "hurst", "oscillators"]),
    default="training",
    show_default=True,
    help="What to plant (described above).",
)
@click.option(
    "--layers",
    "n_layers",
    type=click.IntRange(min=2),
    default=6,
    show_default=True,
    help="Number of layers.",
)
@click.option(
    "--checkpoints",
    "n_checkpoints",
    type=click.IntRange(min=3),
    default=100,
    show_default=True,
    help="Number of checkpoints (epochs 1, 2, ...).",
)
@click.option(
    "--hurst",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.8,
    show_default=True,
    help="Hurst exponent of the layers' changes (--kind hurst).",
)
@click.option(
    "--coupling",
    type=click.Choice(["locked", "independent", "switching"]),
    default="switching",
    show_default=True,
    help="Phase relation of the layers (--kind oscillators).",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Probe samples per checkpoint.",
)
@click.option(
    "--features",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Features per sample.",
)
@click.option(
    "--dtype",
    type=click.Choice(["float16", "float32", "float64"]),
    default="float32",
    show_default=True,
    help="Stored type of the activations.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Random seed: the same seed writes the same archive.",
)
@click.option(
    "--meta",
    "metadata",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parse_meta,
    help="Extra metadata, e.g. --meta dataset=A (repeatable).",
)
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@storage_option
@debug_option
def simulate(
    out: str,
    kind: str,
    n_layers: int,
    n_checkpoints: int,
    hurst: float,
    coupling: str,
    samples: int,
    features: int,
    dtype: str,
    seed: int,
    metadata: dict,
    force: bool,
) -> None:
    """Write a synthetic archive (the help text is ``_SIMULATE_HELP``)."""
    from dynatrain.archive.storage import local_path, redact
    from dynatrain.errors import ArchiveExistsError, InputError
    from dynatrain.simulate import simulate_run, write_run

    exists = f"{redact(out)}: already exists (add --force to replace it)"
    local = local_path(out)
    if local is not None and os.path.lexists(local) and not force:
        raise InputError(exists)
    try:
        run = simulate_run(
            kind,
            n_layers=n_layers,
            n_checkpoints=n_checkpoints,
            hurst=hurst,
            coupling=coupling,
            seed=seed,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    try:
        write_run(
            out,
            run,
            samples=samples,
            features=features,
            dtype=dtype,
            metadata=metadata,
            overwrite=force,
            seed=seed,
        )
    except ArchiveExistsError:  # a URL: found when the writer creates it
        raise InputError(exists) from None
    _say(f"wrote {out}: {kind}, {n_layers} layers x {n_checkpoints} checkpoints")


if __name__ == "__main__":  # pragma: no cover
    main()
