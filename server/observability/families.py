"""Metric families with a cheap update path, exposed through prometheus_client's collector API.

Why not prometheus_client's ``Counter``/``Histogram`` objects: each update there takes a lock and
walks a few wrappers (observable checks, exemplar handling, a linear bucket scan); over the dozen
updates a unary call makes, that was about 35 µs of CPU per call, most of the cost of metrics on
(profiled with cProfile). Here a label set's child is a slotted object whose update is a plain
addition (a bisect for histograms); children are created once per label set and callers keep
them (pre-bound) where the labels are fixed.

Thread safety: every update runs on the server's event loop thread (one writer). The scrape
(on that loop, or in the admin port's thread) copies the children list in one C-level call and
reads numbers, which the GIL keeps whole; a scrape racing an update may see a histogram's sum
one observation ahead of its buckets, which Prometheus tolerates. The exposition itself is
prometheus_client's (``generate_latest`` over a :class:`CollectorRegistry`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class GaugeChild(CounterChild):
    __slots__ = ()

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount


class HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.sum += value
        self.counts[bisect_left(self.bounds, value)] += 1


class Family:
    """One metric name: its label names and a child per label-value tuple."""

    def __init__(self, kind: str, name: str, documentation: str, labelnames: Sequence[str], unit: str = "",
                 buckets: Sequence[float] = ()) -> None:
        self.kind, self.name, self.documentation, self.unit = kind, name, documentation, unit
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        self.children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: {len(self.labelnames)} label values expected")
            if self.kind == "histogram":
                child = HistogramChild(self.bounds)
            else:
                child = GaugeChild() if self.kind == "gauge" else CounterChild()
            self.children[values] = child
        return child

    def collect(self) -> Any:
        children = list(self.children.items())  # one C-level copy: safe against a concurrent insert
        labels = list(self.labelnames)
        if self.kind == "histogram":
            family = HistogramMetricFamily(self.name, self.documentation, labels=labels, unit=self.unit)
            les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
            for values, child in children:
                counts, total, cumulative = list(child.counts), child.sum, 0
                buckets = []
                for le, n in zip(les, counts, strict=True):
                    cumulative += n
                    buckets.append((le, cumulative))
                family.add_metric(list(values), buckets, total)
            return family
        cls: Any = GaugeMetricFamily if self.kind == "gauge" else CounterMetricFamily
        simple = cls(self.name, self.documentation, labels=labels, unit=self.unit)
        for values, child in children:
            simple.add_metric(list(values), child.value)
        return simple


class Families(Collector):
    """The registry's one collector: every family of one server."""

    def __init__(self) -> None:
        self.families: list[Family] = []

    def add(self, kind: str, name: str, documentation: str, labelnames: Sequence[str], **kw: Any) -> Family:
        family = Family(kind, name, documentation, labelnames, **kw)
        self.families.append(family)
        return family

    def collect(self) -> Iterator[Any]:
        for family in self.families:
            yield family.collect()
