"""A small Prometheus registry: counters, gauges and histograms kept in plain dicts, rendered as text.

The hot path is one dict lookup and a few integer additions per observation: a series is a label tuple, a
histogram series a list of per-bucket counts (made cumulative only when scraped). No locks: everything runs on
the gateway's one event loop. Gauges that mirror live state (sessions, upstream health) are not updated as
things happen; a collector reads them from the gateway when `/metrics` is scraped.

Cardinality is the caller's business: label values handed in here must come from bounded sets (the catalog,
the configuration, fixed words). `render()` escapes values as the text format requires.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

__all__ = ["CONTENT_TYPE", "Counter", "Gauge", "Histogram", "Registry", "Sample"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text exposition format."""

Sample = tuple[tuple[str, ...], float]
"""One series of a collected gauge: its label values and its value."""


M = TypeVar("M", bound="_Metric")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def lines(self) -> list[str]:  # pragma: no cover - every kind defines it
        raise NotImplementedError


class Counter(_Metric):
    """A monotonic count per label tuple."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, labels: tuple[str, ...] = (), amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, labels: tuple[str, ...] = ()) -> float:
        return self.values.get(labels, 0.0)

    def lines(self) -> list[str]:
        return [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in list(self.values.items())]


class Gauge(_Metric):
    """A value per label tuple: set directly, or read from `collect` at scrape time (then the dict is ignored)."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        collect: Callable[[], Iterable[Sample]] | None = None,
    ) -> None:
        super().__init__(name, help_text, labels)
        self.values: dict[tuple[str, ...], float] = {}
        self.collect = collect

    def set(self, labels: tuple[str, ...], value: float) -> None:
        self.values[labels] = value

    def inc(self, labels: tuple[str, ...] = (), amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def dec(self, labels: tuple[str, ...] = (), amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) - amount

    def samples(self) -> list[Sample]:
        return list(self.collect()) if self.collect is not None else list(self.values.items())

    def lines(self) -> list[str]:
        return [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in self.samples()]


class _Series:
    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # the last slot is +Inf
        self.total = 0.0


class Histogram(_Metric):
    """Observations per label tuple, counted in fixed buckets (upper bounds, inclusive, as Prometheus wants)."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        super().__init__(name, help_text, labels)
        self.bounds = tuple(sorted(buckets))
        self.series: dict[tuple[str, ...], _Series] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = _Series(len(self.bounds))
        series.counts[bisect_left(self.bounds, value)] += 1
        series.total += value

    def count(self, labels: tuple[str, ...]) -> int:
        series = self.series.get(labels)
        return sum(series.counts) if series is not None else 0

    def lines(self) -> list[str]:
        out: list[str] = []
        names = self.label_names
        for key, series in list(self.series.items()):
            running = 0
            for bound, count in zip((*self.bounds, float("inf")), series.counts, strict=True):
                running += count
                le = 'le="' + _number(bound) + '"'
                out.append(f"{self.name}_bucket{_labels(names, key, le)} {running}")
            out.append(f"{self.name}_sum{_labels(names, key)} {_number(series.total)}")
            out.append(f"{self.name}_count{_labels(names, key)} {running}")
        return out


class Registry:
    """The metrics of one process, in registration order."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}

    def add(self, metric: M) -> M:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} registered twice")
        self._metrics[metric.name] = metric
        return metric

    def __iter__(self) -> Iterable[_Metric]:
        return iter(list(self._metrics.values()))

    def render(self) -> str:
        """The whole registry in the text exposition format (a collector that fails drops its metric only)."""
        out: list[str] = []
        for metric in list(self._metrics.values()):
            try:
                body = metric.lines()
            except Exception:  # a collector reading state mid-change: skip this metric in this scrape
                continue
            out.extend(metric.header())
            out.extend(body)
        return "\n".join(out) + "\n"
