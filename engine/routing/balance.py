"""Which deployment serves next: ordered, smooth weighted round robin, or least in flight.

Why smooth weighted round robin (nginx's algorithm) rather than a weighted random draw: the
shares are exact over any run of calls (3:1 weights give 750 / 250 of 1,000, not 750 ± 40) and
picks interleave (A A B A, not A A A B), while staying deterministic without shared state. Each
replica runs its own; their sum keeps the same shares.

The balancer only orders the deployments it is given: the router passes those that are neither
cooling down nor at their concurrency cap, and the rest of the order is the fallback sequence.
"""

from __future__ import annotations

from .spec import DeploymentSpec, RouteSpec


class Deployment:
    """One deployment of a route, with this process's counters."""

    __slots__ = ("current", "in_flight", "index", "key", "name", "spec")

    def __init__(self, route: str, name: str, index: int, spec: DeploymentSpec) -> None:
        self.spec = spec
        self.name = name
        self.index = index
        self.key = f"{route}/{name}"  # the cooldown key, shared by replicas
        self.in_flight = 0
        self.current = 0.0  # smooth weighted round robin state

    def full(self) -> bool:
        cap = self.spec.max_in_flight
        return cap > 0 and self.in_flight >= cap


class Balancer:
    def __init__(self, route: str, spec: RouteSpec) -> None:
        self.strategy = spec.strategy
        self.deployments = [Deployment(route, name, i, d)
                            for i, (name, d) in enumerate(zip(spec.deployment_names(), spec.deployments, strict=True))]
        self._turn = 0

    def order(self, available: list[Deployment]) -> list[Deployment]:
        if len(available) < 2 or self.strategy == "ordered":
            return available
        if self.strategy == "weighted":
            return self._weighted(available)
        return self._least_in_flight(available)

    def _weighted(self, available: list[Deployment]) -> list[Deployment]:
        total = 0.0
        best = available[0]
        for d in available:
            d.current += d.spec.weight
            total += d.spec.weight
            if d.current > best.current:
                best = d
        best.current -= total
        return [best, *(d for d in available if d is not best)]

    def _least_in_flight(self, available: list[Deployment]) -> list[Deployment]:
        # Ties rotate, so an idle route still spreads its calls.
        self._turn += 1
        n = len(available)
        turn = self._turn
        return sorted(available, key=lambda d: (d.in_flight / d.spec.weight, (d.index - turn) % n))
