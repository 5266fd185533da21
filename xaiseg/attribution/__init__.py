"""Attribution methods' common ground: the base class, attention capture, targets, maps and
method specs (``name{JSON options}``)."""
from .base import Attribution

__all__ = ["Attribution"]
