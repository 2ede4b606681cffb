"""Stage: refuse a caller whose key or team has spent its budget; after the answer, charge it.

The check runs before forwarding (one store round trip, or none in-process). The charge is
the real cost of the answer as the request metrics count it (`telemetry.record.Costing`: the
provider's reported usage at the pricing table's prices), recorded in the background once the
exchange is over: a stream's cost is known at its end. Answers the cache gave cost nothing and
charge nothing; neither does a model the table does not price (Costing logs it once).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from edgeproxy.background import Background
from edgeproxy.exchange import Exchange, Reply
from edgeproxy.security.budgets import BudgetLimits, Budgets, Scope, refusal
from edgeproxy.security.settings import BudgetSettings, KeySettings, TeamSettings
from edgeproxy.telemetry.record import Costing


def _limits(settings: BudgetSettings) -> BudgetLimits:
    return BudgetLimits(daily_usd=settings.daily_usd, monthly_usd=settings.monthly_usd)


class CheckBudget:
    """Runs after route, for callers whose key or team has a budget."""

    __slots__ = (
        "_background",
        "_budgets",
        "_costing",
        "_scopes",
        "_teams",
        "refused",
    )

    def __init__(
        self,
        budgets: Budgets,
        costing: Costing,
        teams: Mapping[str, TeamSettings],
        background: Background,
    ) -> None:
        self._budgets = budgets
        self._costing = costing
        self._teams = teams
        self._background = background
        self._scopes: dict[str, tuple[Scope, ...]] = {}  # by key id, built on first use
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
        """Record what the answer cost (in the background); cache answers cost nothing."""
        usd, _ = self._costing.of(exchange)
        if usd > 0:
            self._background.spawn("budget record", self._budgets.record(scopes, usd))


class _Charge:
    __slots__ = ("_scopes", "_stage")

    def __init__(self, stage: CheckBudget, scopes: tuple[Scope, ...]) -> None:
        self._stage = stage
        self._scopes = scopes

    @property
    def metered(self) -> bool:
        return True  # a budget is charged what the answer cost

    def settle(self, exchange: Exchange) -> None:
        self._stage.charge(exchange, self._scopes)
