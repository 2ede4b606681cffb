"""Stage: refuse a caller whose key or team has spent its budget; after the answer, charge it.

The check runs before forwarding (one store round trip, or none in-process). The charge is
the real cost of the answer, from the provider's reported usage and the pricing table, and is
recorded in the background once the exchange is over: a stream's cost is known at its end.
Answers the cache gave cost nothing and charge nothing. A deployment whose model the table
does not price charges nothing, and is logged once, so an operator can add it to the table.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping

from edgeproxy.background import Background
from edgeproxy.exchange import Exchange, Reply
from edgeproxy.pricing import PricingTable, cost
from edgeproxy.security.budgets import BudgetLimits, Budgets, Scope, refusal
from edgeproxy.security.settings import BudgetSettings, KeySettings, TeamSettings

log = logging.getLogger("edgeproxy.budgets")
_FREE = frozenset({"hit-l1", "hit-l2", "hit-semantic", "coalesced"})


def _limits(settings: BudgetSettings) -> BudgetLimits:
    return BudgetLimits(daily_usd=settings.daily_usd, monthly_usd=settings.monthly_usd)


class CheckBudget:
    """Runs after route, for callers whose key or team has a budget."""

    __slots__ = (
        "_background",
        "_budgets",
        "_pricing",
        "_scopes",
        "_teams",
        "_unpriced",
        "refused",
    )

    def __init__(
        self,
        budgets: Budgets,
        pricing: PricingTable,
        teams: Mapping[str, TeamSettings],
        background: Background,
    ) -> None:
        self._budgets = budgets
        self._pricing = pricing
        self._teams = teams
        self._background = background
        self._scopes: dict[str, tuple[Scope, ...]] = {}  # by key id, built on first use
        self._unpriced: set[tuple[str, str]] = set()
        # Refusals by the kind of scope (key, team) and period (day, month, or the store).
        self.refused: Counter[tuple[str, str]] = Counter()

    def scopes(self, caller: KeySettings) -> tuple[Scope, ...]:
        found = self._scopes.get(caller.id)
        if found is None:
            scopes: list[Scope] = []
            if caller.budget:
                scopes.append((f"key:{caller.id}", _limits(caller.budget)))
            team = self._teams.get(caller.team) if caller.team is not None else None
            if team is not None and team.budget:
                scopes.append((f"team:{caller.team}", _limits(team.budget)))
            found = self._scopes[caller.id] = tuple(scopes)
        return found

    async def __call__(self, exchange: Exchange) -> Reply | None:
        caller = exchange.caller
        if caller is None:
            return None
        scopes = self.scopes(caller)
        if not scopes:
            return None
        verdict = await self._budgets.check(scopes)
        if not verdict.allowed:
            scope = verdict.scope.partition(":")[0] or "store"
            self.refused[(scope, "store" if verdict.unavailable else str(verdict.period))] += 1
            return refusal(verdict)
        charges = exchange.charges
        charge = _Charge(self, scopes)
        if charges is None:
            exchange.charges = [charge]
        else:
            charges.append(charge)
        return None

    def charge(self, exchange: Exchange, scopes: tuple[Scope, ...]) -> None:
        """Record what the answer cost (in the background)."""
        usage, deployment = exchange.usage, exchange.deployment
        if usage is None or deployment is None or exchange.cache_status in _FREE:
            return
        kind, model = deployment.provider.config.kind, exchange.upstream_model
        price = self._pricing.price(kind, model)
        if price is None:
            if (kind, model) not in self._unpriced:
                self._unpriced.add((kind, model))
                log.warning(
                    "no price for %s model %s: its answers are not charged to budgets "
                    "(add it under pricing.models)",
                    kind,
                    model,
                )
            return
        usd = cost(price, usage)
        if usd > 0:
            self._background.spawn("budget record", self._budgets.record(scopes, usd))


class _Charge:
    __slots__ = ("_scopes", "_stage")

    def __init__(self, stage: CheckBudget, scopes: tuple[Scope, ...]) -> None:
        self._stage = stage
        self._scopes = scopes

    def settle(self, exchange: Exchange) -> None:
        self._stage.charge(exchange, self._scopes)
