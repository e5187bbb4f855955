"""The default lifecycle stage model of the design (``../shared/design.md``), used when a configuration
declares no ``[[stages]]``. It refers only to values the engine computes, so it works with any CRM."""

from __future__ import annotations

from core.config import Condition, StageConfig


def _c(field: str, op: str, value: object = None) -> Condition:
    return Condition(field=field, op=op, value=value)


def default_stages() -> list[StageConfig]:
    """subscriber → lead → MQL → SQL → opportunity → customer → repeat → loyal, with decline stages
    at_risk/churned and reactivated. Decline uses P(alive) and recency against the usual purchase gap."""
    return [
        StageConfig(name="subscriber", action="nurture", hubspot_lifecyclestage="subscriber"),
        StageConfig(name="lead", action="nurture", hubspot_lifecyclestage="lead",
                    criteria=[_c("engagement_score", "gte", 10.0)]),
        StageConfig(name="marketing_qualified", action="nurture", hubspot_lifecyclestage="marketingqualifiedlead",
                    criteria=[_c("grade", "in", ["A", "B"])]),
        StageConfig(name="sales_qualified", action="hand_to_sales",
                    hubspot_lifecyclestage="salesqualifiedlead", criteria=[_c("grade", "eq", "A")]),
        StageConfig(name="opportunity", action="hand_to_sales", hubspot_lifecyclestage="opportunity",
                    criteria=[_c("open_deals", "gte", 1.0)]),
        StageConfig(name="customer", action="onboard", hubspot_lifecyclestage="customer",
                    criteria=[_c("won_deals", "gte", 1.0)]),
        StageConfig(name="repeat_customer", action="cross_sell", hubspot_lifecyclestage="customer",
                    criteria=[_c("frequency", "gte", 1.0)]),
        StageConfig(name="loyal", action="upsell", hubspot_lifecyclestage="evangelist",
                    criteria=[_c("frequency", "gte", 3.0), _c("clv_percentile", "gte", 80.0)]),
        StageConfig(name="at_risk", kind="decline", action="win_back", hubspot_lifecyclestage="customer",
                    criteria=[_c("won_deals", "gte", 1.0)],
                    any_of=[[_c("p_alive", "lt", 0.5)], [_c("recency_ratio", "gt", 2.0)]]),
        StageConfig(name="churned", kind="decline", action="win_back", hubspot_lifecyclestage="other",
                    criteria=[_c("won_deals", "gte", 1.0), _c("p_alive", "lt", 0.1)]),
        StageConfig(name="reactivated", kind="reactivation", action="onboard", hubspot_lifecyclestage="customer",
                    criteria=[_c("previous_stage", "in", ["at_risk", "churned"]),
                              _c("days_since_last_purchase", "lte", 30.0)]),
    ]
