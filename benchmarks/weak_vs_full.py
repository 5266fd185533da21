"""Dice per row and training regime of one or more `xaiseg benchmark` runs, with error bars.

    python benchmarks/weak_vs_full.py RUN [RUN ...] --out docs/img/weak-vs-full.png

Reads each run's slices.csv (the positive slices' Dice, as the run scored them) and prints a
Markdown table with, per row, its regime (weak: a classifier's map, named after the
checkpoint; full: a segmenter's probabilities, the rows without a detection probability; floor:
centre-prior and random, which use no model), the
mean Dice and a 95 % interval from a bootstrap over subjects (slices of one head are not
independent, so whole subjects are resampled), then draws the same as a bar chart.
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np


FLOORS = ("centre-prior", "random")  # maps that use no model: the floor every row must clear


def positive_dice(run: Path) -> dict[tuple[str, str], dict[str, list[float]]]:
    """(checkpoint or '', row) -> subject -> the Dice of its positive slices."""
    out: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(run / "slices.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["role"] != "positive" or r["dice"] == "":
                continue
            regime = "full" if r["prob"] == "" else "floor" if r["method"] in FLOORS else "weak"
            out[(regime, r.get("checkpoint", ""), r["method"])][r["subject"]].append(float(r["dice"]))
    return out


def subject_bootstrap(by_subject: dict[str, list[float]], n_boot: int, seed: int) -> tuple[float, float, float]:
    """Mean over all slices, and the 2.5 / 97.5 % quantiles of that mean over resampled subjects."""
    subjects = sorted(by_subject)
    sums = np.array([sum(by_subject[s]) for s in subjects])
    counts = np.array([len(by_subject[s]) for s in subjects])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(subjects), size=(n_boot, len(subjects)))
    means = sums[picks].sum(1) / counts[picks].sum(1)
    return float(sums.sum() / counts.sum()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def rows(runs: list[Path], n_boot: int, seed: int) -> list[dict]:
    table = []
    for run in runs:
        for (regime, ckpt, method), by_subject in sorted(positive_dice(run).items()):
            mean, lo, hi = subject_bootstrap(by_subject, n_boot, seed)
            label = f"{ckpt}/{method}" if ckpt else method
            name = {"weak": f"weak ({ckpt})" if ckpt else "weak (classifier)", "full": "full (segmenter)",
                    "floor": "floor (no model)"}[regime]
            table.append({"run": run.name, "row": label, "regime": name,
                          "slices": sum(map(len, by_subject.values())), "subjects": len(by_subject),
                          "dice": mean, "lo": lo, "hi": hi})
    return table


def paired_difference(run: Path, a: str, b: str, n_boot: int, seed: int) -> tuple[float, float, float, int]:
    """Mean Dice of row ``a`` minus row ``b`` over the positive slices both scored, with a 95 %
    subject-bootstrap interval of that difference (the rows share slices, so the pairing removes
    the subjects' difficulty from the comparison); and the number of slices."""
    rows = {label: by for (_, ckpt, method), by in positive_dice(run).items()
            for label in [f"{ckpt}/{method}" if ckpt else method]}
    if a not in rows or b not in rows:
        raise SystemExit(f"--paired: {a!r} or {b!r} is not a row of {run} (rows: {', '.join(sorted(rows))})")
    diff = {s: [x - y for x, y in zip(rows[a][s], rows[b][s])] for s in rows[a] if s in rows[b]}
    mean, lo, hi = subject_bootstrap(diff, n_boot, seed)
    return mean, lo, hi, sum(map(len, diff.values()))


def plot(table: list[dict], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = list(dict.fromkeys(r["regime"] for r in table))
    colours = dict(zip(regimes, plt.get_cmap("tab10").colors))
    fig, ax = plt.subplots(figsize=(7.5, 0.38 * len(table) + 1.4))
    y = np.arange(len(table))[::-1]
    for yi, r in zip(y, table):
        ax.barh(yi, r["dice"], color=colours[r["regime"]], height=0.7)
        ax.errorbar(r["dice"], yi, xerr=[[r["dice"] - r["lo"]], [r["hi"] - r["dice"]]], color="black", capsize=3, lw=1)
    ax.set_yticks(y, [f"{r['row']}  ({r['run']})" if len({t['run'] for t in table}) > 1 else r["row"] for r in table])
    ax.set_xlabel("Dice on positive slices (mean; 95 % subject bootstrap)")
    ax.set_xlim(0, max(0.05, max(r["hi"] for r in table) * 1.1))
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=colours[g]) for g in regimes], labels=regimes,
              loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="output folders of xaiseg benchmark")
    ap.add_argument("--out", type=Path, default=None, help="write the bar chart here (PNG)")
    ap.add_argument("--title", default="Weak against full supervision (xaiseg benchmark)")
    ap.add_argument("--boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--paired", action="append", default=[], metavar="A,B",
                    help="also print row A minus row B (e.g. binary/hgi-sam,subtypes/hgi-sam) on the slices both scored, "
                         "of the first run; repeatable")
    args = ap.parse_args(argv)
    table = rows(args.runs, args.boot, args.seed)
    print("| run | row | regime | positive slices (subjects) | Dice | 95 % CI |")
    print("|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['run']} | {r['row']} | {r['regime']} | {r['slices']} ({r['subjects']}) | {r['dice']:.3f} | "
              f"{r['lo']:.3f}–{r['hi']:.3f} |")
    for pair in args.paired:
        a, b = pair.split(",", 1)
        mean, lo, hi, n = paired_difference(args.runs[0], a.strip(), b.strip(), args.boot, args.seed)
        print(f"{a} - {b}: {mean:+.3f} (95 % CI {lo:+.3f} to {hi:+.3f}; {n} paired slices)")
    if args.out:
        plot(table, args.out, args.title)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
