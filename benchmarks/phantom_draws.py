"""Detection AUC of checkpoints on several phantom draws, not only the one they were selected on.

    python benchmarks/phantom_draws.py --checkpoint DIR [DIR ...] [--seeds 1,2,3] [--cache phantom-draws]

Writes (once; reused while its settings and the generator's version match) a phantom per seed
into ``CACHE/seed-N`` with the size ``xaiseg phantom`` writes by default (``--subjects``,
``--slices``, ``--size`` change it; a folder with other settings, e.g. another prevalence, is
rewritten), scores every written slice with each checkpoint (its own
preprocessing, as ``xaiseg train`` validates) and prints, per checkpoint and draw, the pooled
AUC and the mean AUC within the heads that hold both classes, then the mean over the draws.

Why: a run picks its epoch on the phantom it validates on, and one draw of 20 heads moves a
checkpoint's AUC by up to 0.16 (docs/training.md, "Other phantom draws"); a setting is judged
on several draws and several training seeds. The within-head AUC says whether the pooled one
is lost to shifts between heads (acquisition, anatomy) or within them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SEEDS = (1, 2, 3)


def writer_defaults() -> dict:
    """The default arguments of ``write_phantom``: the phantom ``xaiseg phantom`` writes."""
    import inspect

    from xaiseg.data.phantom_writer import write_phantom

    return {k: v.default for k, v in inspect.signature(write_phantom).parameters.items()}


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    default = writer_defaults()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", nargs="+", required=True, help="checkpoint directories of `xaiseg train`")
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="phantom seeds, comma-separated (default 1,2,3)")
    ap.add_argument("--cache", default="phantom-draws", help="where the draws are written (CACHE/seed-N)")
    ap.add_argument("--subjects", type=int, default=default["subjects"])
    ap.add_argument("--slices", type=int, default=default["slices_per_subject"])
    ap.add_argument("--size", type=int, default=default["size"])
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", help="also write the figures here")
    return ap.parse_args(argv)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise ValueError(f"--seeds must be comma-separated integers >= 0, e.g. 1,2,3, not {text!r}")
    return seeds


def draw(cache: Path, seed: int, subjects: int, slices: int, size: int) -> Path:
    """The phantom of ``seed`` in ``cache/seed-N``: reused if its phantom.json says it is the
    default phantom of this seed and size from this generator version, else (re)written (which
    ``write_phantom`` refuses for a folder it did not write)."""
    from xaiseg.data.phantom import PHANTOM_VERSION
    from xaiseg.data.phantom_writer import write_phantom

    defaults = writer_defaults()
    out = cache / f"seed-{seed}"
    want = {"generator": "xaiseg phantom", "version": PHANTOM_VERSION, "seed": seed, "subjects": subjects,
            "slices_per_subject": slices, "size": size, "prevalence": defaults["prevalence"],
            "acquisition": defaults["acquisition"]}
    try:
        have = json.loads((out / "phantom.json").read_text())
    except (OSError, ValueError):
        have = None
    if isinstance(have, dict) and all(have.get(k) == v for k, v in want.items()):
        return out
    return write_phantom(out, subjects=subjects, slices_per_subject=slices, size=size, seed=seed, progress=False,
                         overwrite=True)


def draw_figures(y: np.ndarray, p: np.ndarray, subjects: np.ndarray) -> dict[str, float | int]:
    """Pooled AUC, and the mean AUC within the heads that hold positives and negatives."""
    from xaiseg.metrics.auc import mann_whitney_auc as roc_auc

    within = [roc_auc(y[subjects == s], p[subjects == s]) for s in np.unique(subjects)
              if 0 < y[subjects == s].sum() < (subjects == s).sum()]
    return {"auc": float(roc_auc(y, p)), "within_head_auc": float(np.mean(within)) if within else float("nan"),
            "heads_with_both": len(within), "n": int(len(y)), "positives": int(y.sum())}


def score(loaded, data: Path) -> dict[str, float | int]:
    from xaiseg.data import open_dataset
    from xaiseg.training.evaluation import labelled_probabilities

    ds = open_dataset(str(data))
    idx, y, p = labelled_probabilities(loaded, ds, progress=False)
    return draw_figures(y > 0.5, p, np.array([ds.records[i].subject for i in idx]))


def _check_json_target(path: str | None) -> None:
    if path and not Path(path).parent.is_dir():
        raise ValueError(f"--json {path}: its folder {Path(path).parent} does not exist")


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    from xaiseg.errors import XaisegError
    from xaiseg.training.checkpoint import load_model

    try:  # every check before the first draw is written
        seeds = parse_seeds(args.seeds)
        _check_json_target(args.json)
        loaded = {ck: load_model(ck, device=args.device) for ck in args.checkpoint}
        draws = {s: draw(Path(args.cache), s, args.subjects, args.slices, args.size) for s in seeds}
        table = {ck: {s: score(model, d) for s, d in draws.items()} for ck, model in loaded.items()}
    except (XaisegError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for ck, rows in table.items():
        print(f"{ck}:")
        for s, f in rows.items():
            print(f"  seed {s}: AUC {f['auc']:.3f}, within heads {f['within_head_auc']:.3f} "
                  f"({f['heads_with_both']} heads; {f['positives']} of {f['n']} slices positive)")
        print(f"  mean over {len(rows)} draws: AUC {np.mean([f['auc'] for f in rows.values()]):.3f}")
    if args.json:
        from xaiseg.training.checkpoint import jsonable  # NaN (no head with both classes) as null

        figures = {ck: {str(s): f for s, f in rows.items()} for ck, rows in table.items()}
        Path(args.json).write_text(json.dumps(jsonable(figures), indent=1, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
