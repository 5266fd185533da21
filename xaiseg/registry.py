"""Entry-point registries for attribution methods, threshold strategies and metrics.

Built-ins and third-party packages use the same door: an entry point in one of the groups
``xaiseg.methods``, ``xaiseg.adapters``, ``xaiseg.thresholds`` or ``xaiseg.metrics``. Entry points are only
*listed* at start-up; the object behind a name is imported the first time it is asked for, so
a broken or heavy plugin costs nothing until it is used.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")

METHODS_GROUP = "xaiseg.methods"
ADAPTERS_GROUP = "xaiseg.adapters"
THRESHOLDS_GROUP = "xaiseg.thresholds"
METRICS_GROUP = "xaiseg.metrics"


class UnknownNameError(KeyError):
    """Raised for a name no installed package registers; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class _Entry:
    name: str
    distribution: str
    entry_point: EntryPoint | None = None
    obj: Any = None


class Registry(Generic[T]):
    """Name → object, filled lazily from one entry-point group plus in-process registrations."""

    def __init__(self, group: str, kind: str) -> None:
        self.group = group
        self.kind = kind
        self._entries: dict[str, _Entry] | None = None
        self._loaded: dict[str, T] = {}

    def _scan(self) -> dict[str, _Entry]:
        if self._entries is None:
            found: dict[str, _Entry] = {}
            for ep in sorted(entry_points(group=self.group), key=lambda e: e.name):
                dist = ep.dist.name if ep.dist is not None else "unknown"
                if ep.name in found:
                    other = found[ep.name]
                    if other.entry_point is not None and other.entry_point.value == ep.value:
                        continue  # the same distribution seen twice on sys.path (editable + site)
                    warnings.warn(
                        f"{self.kind} {ep.name!r} is registered by both {other.distribution!r} and "
                        f"{dist!r}; using the one from {other.distribution!r}",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                    continue
                found[ep.name] = _Entry(ep.name, dist, entry_point=ep)
            self._entries = found
        return self._entries

    def register(self, name: str, obj: T, distribution: str = "__main__") -> T:
        """Register an object in this process (for notebooks and tests; packages use entry points)."""
        entries = self._scan()
        if name in entries:
            warnings.warn(
                f"{self.kind} {name!r} is already registered by {entries[name].distribution!r}; "
                "replacing it",
                RuntimeWarning,
                stacklevel=2,
            )
        entries[name] = _Entry(name, distribution, obj=obj)
        self._loaded[name] = obj
        return obj

    def unregister(self, name: str) -> None:
        self._scan().pop(name, None)
        self._loaded.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._scan())

    def distribution(self, name: str) -> str:
        base, _, _ = name.partition(":")
        entries = self._scan()
        return entries[name].distribution if name in entries else entries[base].distribution

    def get(self, name: str) -> T:
        if name in self._loaded:
            return self._loaded[name]
        entries = self._scan()
        if name not in entries:
            base, sep, variant = name.partition(":")
            if sep and base in entries:
                # "family:Variant" (e.g. captum:IntegratedGradients): the family object builds it.
                family = self.get(base)
                make = getattr(family, "variant", None)
                if not callable(make):
                    raise UnknownNameError(f"{self.kind} {base!r} has no variants (asked for {name!r})")
                obj = make(variant)
                self._loaded[name] = obj
                return obj
            known = ", ".join(self.names()) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; available: {known}")
        entry = entries[name]
        try:
            obj = entry.obj if entry.entry_point is None else entry.entry_point.load()
        except Exception as exc:  # a broken plugin must not look like a missing one
            raise ImportError(
                f"{self.kind} {name!r} from {entry.distribution!r} failed to load: {exc}"
            ) from exc
        self._loaded[name] = obj
        return obj

    def refresh(self) -> None:
        """Forget what was scanned (after installing a plugin in a running process)."""
        self._entries = None
        self._loaded.clear()


methods: Registry[type] = Registry(METHODS_GROUP, "method")
adapters: Registry[type] = Registry(ADAPTERS_GROUP, "model adapter")
thresholds: Registry[Callable[..., Any]] = Registry(THRESHOLDS_GROUP, "threshold strategy")
metrics: Registry[Callable[..., Any]] = Registry(METRICS_GROUP, "metric")


@dataclass(frozen=True)
class MethodInfo:
    name: str
    description: str
    architectures: tuple[str, ...]
    needs_gradients: bool
    distribution: str


def list_methods() -> list[str]:
    """Names of every registered attribution method, families expanded to their variants."""
    out: list[str] = []
    for name in methods.names():
        out.append(name)
        try:
            cls = methods.get(name)
        except ImportError:
            continue
        variants = getattr(cls, "variants", None)
        if callable(variants):
            out.extend(f"{name}:{v}" for v in variants())
    return out


def get_method(name: str) -> type:
    """The attribution class registered under ``name`` (use ``family:Variant`` for families)."""
    return methods.get(name)


def method_info(name: str) -> MethodInfo:
    """Metadata of a registered method; ``architectures`` are the installed adapters' names it
    supports (empty: model-agnostic, any classifier)."""
    from .adapters.support import supported_families

    cls = get_method(name)
    families = supported_families(cls)
    return MethodInfo(
        name=name,
        description=getattr(cls, "description", "") or (cls.__doc__ or "").strip().split("\n")[0],
        architectures=() if families == ["any"] else tuple(families),
        needs_gradients=bool(getattr(cls, "needs_gradients", False)),
        distribution=methods.distribution(name),
    )


def list_thresholds() -> list[str]:
    return thresholds.names()


def get_threshold(name: str) -> Callable[..., Any]:
    return thresholds.get(name)


def list_metrics() -> list[str]:
    return metrics.names()


def get_metric(name: str) -> Callable[..., Any]:
    return metrics.get(name)
