"""The benchmark: every method's maps → masks → scores against ground truth (DESIGN.md §3).

Library use::

    import xaiseg.benchmark as xb
    result = xb.run(data="physionet-ct-ich/", checkpoint="runs/tiny", methods="hgi-sam,gradcam")
    result.summary["methods"]["hgi-sam"]["metrics"]["dice"]["mean"]
    result.paths["summary_csv"]
"""
from .runner import DEFAULT_METHODS, BenchmarkResult, run

__all__ = ["BenchmarkResult", "DEFAULT_METHODS", "run"]
