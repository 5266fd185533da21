"""CT data: loaders for PhysioNet CT-ICH, RSNA 2019 and NIfTI folders, windowing, brain masks,
augmentation and the synthetic head-CT phantom."""
from .constants import DEFAULT_WINDOWS, LABELS, SUBTYPES

__all__ = ["DEFAULT_WINDOWS", "LABELS", "SUBTYPES"]
