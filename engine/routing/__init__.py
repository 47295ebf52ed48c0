"""Routing: named routes of deployments with retries, fallbacks, balancing and cooldowns (issue 12).

Why in the engine: both front doors only resolve a route name; everything a routed call does —
which deployment, how often, how long to wait, who cools down — happens here, once.

- :mod:`.spec`: what a route is (checked strictly, from the config or storage);
- :mod:`.retry`: which failures are retried, the waits, the retry budget;
- :mod:`.balance`: ordered / smooth weighted round robin / least in flight;
- :mod:`.cooldown`: cooldown state and its store interface (memory here, Redis in server/);
- :mod:`.params`: the caller's parameters fitted to the serving model's rules;
- :mod:`.router`: the loop that runs one routed call.
"""

from .cooldown import CooldownStore, MemoryCooldowns
from .router import Route, Router, RoutingEvents, Served
from .spec import DeploymentSpec, RouteSpec, parse_routes

__all__ = ["CooldownStore", "DeploymentSpec", "MemoryCooldowns", "Route", "RouteSpec", "Router", "RoutingEvents",
           "Served", "parse_routes"]
