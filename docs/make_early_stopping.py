"""Regenerate ``docs/early_stopping.md``: dynatrain's live stop against patience on accuracy.

On every training run in ``sample_data/``, this script compares the epoch at which each
rule would have stopped the run, and what that costs in accuracy, with training to the
end. Every number in the document comes from here; nothing is typed by hand.

Usage::

    python docs/make_early_stopping.py            # write docs/early_stopping.md
    python docs/make_early_stopping.py --check    # exit 1 if it is out of date

The test suite runs ``--check``, so the page cannot drift from what the code computes on
the shipped runs, whatever runs ``sample_data/`` holds.
"""

from __future__ import annotations

import argparse
import difflib
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynatrain import defaults
from dynatrain.analysis import Settings, analyze
from dynatrain.archive.reader import open_archive

ROOT = Path(__file__).resolve().parent.parent
RUNS = sorted((ROOT / "sample_data").glob("*.h5"))
DOCUMENT = ROOT / "docs" / "early_stopping.md"
PATIENCES = (5, 10, 20)
ALPHA = defaults.SIGNIFICANCE_LEVEL
#: The convergence's p-value as analyze computes it by default (at most 99 surrogate
#: runs); the other surrogate tests play no part here.
SETTINGS = Settings(surrogates=0, convergence_surrogates=defaults.CONVERGENCE_SURROGATES)


@dataclass(frozen=True)
class Run:
    """One run: its accuracy curve and where dynatrain's rule decided."""

    name: str
    metric: str
    epochs: np.ndarray
    accuracy: np.ndarray
    decided_epoch: float | None
    p: float | None


@dataclass(frozen=True)
class Stop:
    """Where a rule stopped one run (the last epoch if it never fired)."""

    epoch: float
    saved: float  # epochs not trained
    lost: float  # accuracy at the end minus at the stop (percentage points)
    lost_best: float  # ... minus the best up to the stop (restore the best weights)
    fired: bool


def load_runs() -> list[Run]:
    """Analyse every shipped run that records an accuracy metric."""
    runs = []
    for path in RUNS:
        result = analyze(path, SETTINGS)
        if result.metric is None:
            continue  # no accuracy: nothing to compare with
        with open_archive(path) as archive:
            epochs = archive.epochs[: result.checkpoints]
            accuracy = archive.metric(result.metric)[: result.checkpoints]
        runs.append(
            Run(
                path.stem,
                result.metric,
                epochs,
                accuracy,
                result.decided_epoch,
                result.convergence_p,
            )
        )
    return runs


def patience_stop(epochs: np.ndarray, accuracy: np.ndarray, patience: int) -> int | None:
    """Index at which Keras' / Lightning's EarlyStopping stops; None if it never does.

    ``mode="max"``, ``min_delta=0``: an epoch improves if its accuracy is strictly above
    the best so far (the first one seen is the best); otherwise the wait grows by one,
    and training stops at the epoch where the wait reaches ``patience``. The checkpoint
    at epoch 0 (the untrained network, before any training epoch) is not shown to the
    rule, as no callback sees it.
    """
    best, wait = -math.inf, 0
    for index in range(len(epochs)):
        if epochs[index] <= 0 or not math.isfinite(accuracy[index]):
            continue
        if accuracy[index] > best:
            best, wait = accuracy[index], 0
        else:
            wait += 1
            if wait >= patience:
                return index
    return None


def stop_at(run: Run, index: int | None) -> Stop:
    """The stop at checkpoint `index` (None: trained to the end)."""
    end = len(run.epochs) - 1
    at = end if index is None else index
    trained = run.accuracy[: at + 1]
    final = run.accuracy[end]
    return Stop(
        epoch=float(run.epochs[at]),
        saved=float(run.epochs[end] - run.epochs[at]),
        lost=100 * float(final - run.accuracy[at]),
        lost_best=100 * float(final - np.nanmax(trained)),
        fired=index is not None,
    )


def dynatrain_stop(run: Run, *, require_p: bool) -> Stop:
    """Stop at the decided epoch (with `require_p`, only if p < ALPHA)."""
    decided = run.decided_epoch
    if decided is None or (require_p and (run.p is None or run.p >= ALPHA)):
        return stop_at(run, None)
    return stop_at(run, int(np.searchsorted(run.epochs, decided)))


RULES = {
    **{
        f"patience {p}": (lambda run, p=p: stop_at(run, patience_stop(run.epochs, run.accuracy, p)))
        for p in PATIENCES
    },
    f"dynatrain, p < {ALPHA:g}": lambda run: dynatrain_stop(run, require_p=True),
    "dynatrain, any p": lambda run: dynatrain_stop(run, require_p=False),
}


def num(value: float, digits: int = 1) -> str:
    """A number with `digits` decimals, never "-0.0"."""
    text = f"{value:.{digits}f}"
    return "0.0" if text in ("-0.0", "-0.00") else text


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class Summary:
    """One rule over every run."""

    fired: int
    saved_mean: float
    saved_fraction: float
    lost_mean: float
    lost_median: float
    lost_worst: float
    lost_best_mean: float
    over_one_point: int
    over_ten_points: int


def summarise(runs: Sequence[Run], stops: Sequence[Stop]) -> Summary:
    """The summary row of one rule."""
    lengths = [float(run.epochs[-1] - run.epochs[0]) for run in runs]
    saved = np.array([s.saved for s in stops])
    lost = np.array([s.lost for s in stops])
    return Summary(
        fired=sum(s.fired for s in stops),
        saved_mean=float(saved.mean()),
        saved_fraction=float(saved.sum() / sum(lengths)),
        lost_mean=float(lost.mean()),
        lost_median=float(np.median(lost)),
        lost_worst=float(lost.max()),
        lost_best_mean=float(np.mean([s.lost_best for s in stops])),
        over_one_point=int(np.sum(lost > 1.0)),
        over_ten_points=int(np.sum(lost > 10.0)),
    )


def verdict(summaries: dict[str, Summary], n_runs: int) -> str:
    """Which rule wins, by dominance: more epochs saved for no more accuracy lost."""
    ours = [name for name in summaries if name.startswith("dynatrain")]
    theirs = [name for name in summaries if name.startswith("patience")]
    lines = []
    for mine in ours:
        a = summaries[mine]
        beaten_by = [
            name
            for name in theirs
            if summaries[name].saved_mean >= a.saved_mean
            and summaries[name].lost_mean <= a.lost_mean
        ]
        beats = [
            name
            for name in theirs
            if a.saved_mean >= summaries[name].saved_mean
            and a.lost_mean <= summaries[name].lost_mean
        ]
        head = (
            f"**{mine}** stops {a.fired} of {n_runs} runs early, saves"
            f" {num(a.saved_mean)} epochs a run on average ({num(100 * a.saved_fraction, 0)}% of"
            f" the training) and loses {num(a.lost_mean, 2)} points of accuracy on average"
            f" (median {num(a.lost_median, 2)}, worst run {num(a.lost_worst, 2)};"
            f" {a.over_one_point} of {n_runs} runs lose more than one point)"
        )
        if beaten_by:
            lines.append(
                f"{head}: {', '.join(beaten_by)} saves at least as many epochs for no more"
                " accuracy lost, so on these runs the usual early stopping wins."
            )
        elif beats:
            lines.append(
                f"{head}: it saves at least as many epochs as {', '.join(beats)} for no more"
                " accuracy lost, so on these runs it wins against"
                f" {'that rule' if len(beats) == 1 else 'those rules'}."
            )
        else:
            lines.append(
                f"{head}: neither better nor worse than any patience rule on both counts; a"
                " trade-off."
            )
    return "\n\n".join(lines)


def early_stops_sentence(runs: Sequence[Run], stops: dict[str, list[Stop]]) -> str:
    """How many of the patience rules' costly stops come in the first fifth of a run."""
    costly = early = 0
    for name, rule_stops in stops.items():
        if not name.startswith("patience"):
            continue
        for run, stop in zip(runs, rule_stops, strict=True):
            if stop.fired and stop.lost > 10:
                costly += 1
                early += stop.epoch - run.epochs[0] <= 0.2 * (run.epochs[-1] - run.epochs[0])
    if not costly:
        return "No patience stop costs more than 10 points of accuracy on these runs.\n"
    return (
        f"{early} of the {costly} patience stops that cost more than 10 points come in the first"
        " fifth of their run, where accuracy can stall before it rises; a warm-up (Keras'"
        " `start_from_epoch`, Lightning's `Trainer(min_epochs=...)`) is the usual cure, and"
        " dynatrain's rule has one built in (it is armed only once the volatility has risen above"
        " its first value).\n"
    )


def render(runs: Sequence[Run]) -> str:
    """The whole page."""
    stops = {name: [rule(run) for run in runs] for name, rule in RULES.items()}
    summaries = {name: summarise(runs, s) for name, s in stops.items()}
    significant = sum(run.p is not None and run.p < ALPHA for run in runs)
    decided = sum(run.decided_epoch is not None for run in runs)
    metrics = sorted({run.metric for run in runs})
    out = [
        "# Early stopping: dynatrain's live stop against patience on accuracy",
        "",
        "<!-- Generated by docs/make_early_stopping.py from sample_data/; do not edit. -->",
        "",
        "Would stopping a run where dynatrain's stability index converges save training, and at"
        " what cost in accuracy, compared with the early stopping users already have? On each"
        f" of the {len(runs)} runs in `sample_data/` (accuracy: {', '.join(metrics)}), every rule"
        " below stops the run at some epoch (or never, and the run trains to its end); the"
        " run's own recorded curve says what the accuracy would have been.",
        "",
        "## The rules",
        "",
        "* **patience P** (P = " + ", ".join(map(str, PATIENCES)) + "): Keras'"
        " `EarlyStopping(monitor='val_accuracy', mode='max', patience=P)` and Lightning's"
        " `EarlyStopping(monitor=..., mode='max', patience=P)` with their defaults"
        " `min_delta=0`: an epoch improves when its accuracy is strictly above the best so"
        " far; otherwise a counter grows, and training stops at the epoch where it reaches P."
        " The checkpoint before training (epoch 0) is not shown to the rule.",
        "* **dynatrain, any p**: stop at `convergence.decided_epoch`, the checkpoint at which"
        " the causal rule decides that the stability index converged (what `dynatrain watch"
        " --until converged` and `DynatrainCallback(stop_on_convergence=True, max_p=None)` do;"
        " `analyze` reports the same epoch afterwards). Default settings.",
        f"* **dynatrain, p < {ALPHA:g}**: the same, but only when the convergence's surrogate"
        f" p-value is below {ALPHA:g} (time-shuffled copies of the run rarely converge as early);"
        " otherwise train to the end (`DynatrainCallback`'s default, `watch --max-p`).",
        "",
        "**Accuracy lost** is the accuracy at the end of training minus the accuracy at the"
        " stop, in percentage points (positive: the stop costs accuracy). Keras and Lightning"
        " keep the weights of the stopping epoch by default; with `restore_best_weights=True`"
        " (Keras) or a best-model checkpoint (Lightning), the model kept is the best up to the"
        " stop, shown as *lost (restore best)*.",
        "",
        "## Summary",
        "",
        table(
            [
                "rule",
                "runs stopped early",
                "epochs saved (mean)",
                "training saved",
                "accuracy lost (mean)",
                "median",
                "worst run",
                "runs losing > 1 point",
                "> 10 points",
                "lost (restore best, mean)",
            ],
            [
                [
                    name,
                    f"{s.fired} of {len(runs)}",
                    num(s.saved_mean),
                    f"{num(100 * s.saved_fraction, 0)}%",
                    num(s.lost_mean, 2),
                    num(s.lost_median, 2),
                    num(s.lost_worst, 2),
                    str(s.over_one_point),
                    str(s.over_ten_points),
                    num(s.lost_best_mean, 2),
                ]
                for name, s in summaries.items()
            ],
        ),
        "",
        "## Verdict",
        "",
        verdict(summaries, len(runs)),
        "",
        f"The stability index converged (the rule decided) in {decided} of {len(runs)} runs; in"
        f" {significant} of them its time-shuffled surrogates converge as early in fewer than"
        f" {ALPHA:g} of draws (the p-value below). A stop whose p is not small is a stop that a"
        " series with the run's values in random order would also have triggered.",
        "",
        early_stops_sentence(runs, stops),
        "Accuracy here is the validation accuracy the rules watch, so *lost (restore best)* is"
        " optimistic for the patience rules: the best epoch is chosen on the same data it is"
        " scored on.",
        "",
        "## Per run",
        "",
        "Stop epoch (accuracy lost, points) for each rule; the last columns give dynatrain's"
        " decided epoch and its surrogate p-value.",
        "",
    ]
    header = ["run", "end", *RULES, "decided", "p"]
    rows = []
    for i, run in enumerate(runs):
        cells = [run.name, f"{run.epochs[-1]:g} ({num(100 * run.accuracy[-1], 1)}%)"]
        for name in RULES:
            stop = stops[name][i]
            cells.append(f"{stop.epoch:g} ({num(stop.lost, 2)})" if stop.fired else "-")
        cells.append("-" if run.decided_epoch is None else f"{run.decided_epoch:g}")
        cells.append("-" if run.p is None else f"{run.p:.3g}")
        rows.append(cells)
    out += [table(header, rows), ""]
    out += [
        "A `-` means the rule never fired: the run trains to its end (no epoch saved, no"
        " accuracy lost). `end` is the last epoch and the accuracy there.",
        "",
    ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check``, compare) the early-stopping page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    text = render(load_runs())
    if args.check:
        current = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.exists() else ""
        if current == text:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(),
            text.splitlines(),
            "docs/early_stopping.md",
            "regenerated",
            lineterm="",
        )
        print("\n".join(diff), file=sys.stderr)
        print(
            "docs/early_stopping.md is out of date: run python docs/make_early_stopping.py",
            file=sys.stderr,
        )
        return 1
    DOCUMENT.write_text(text, encoding="utf-8")
    print(f"wrote {DOCUMENT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
