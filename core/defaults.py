"""The default lifecycle stage model of the design (``../shared/design.md``), used when a configuration
declares no ``[[stages]]``. It refers only to values the engine computes, so it works with any CRM.

Also example scoring and action rules (:func:`example_scoring_rules`, :func:`example_action_rules`) written
against HubSpot property names: they are what ``examples/`` shows and what the tests use, not defaults,
since rules name CRM properties that differ from one portal to the next.
"""

from __future__ import annotations

from core.config import ActionRule, Condition, ScoringRule, StageConfig

#: Below this P(alive) a customer is more likely to have dropped out than not: churned.
CHURN_P_ALIVE = 0.5
#: Between the churn threshold and this, the model gives a 40-50% chance the customer has already gone: at risk.
AT_RISK_P_ALIVE = 0.6
#: At risk as well: silent for more than this many usual gaps between purchases (the generator's own rule).
AT_RISK_GAPS = 2.0


def _c(field: str, op: str, value: object = None) -> Condition:
    return Condition(field=field, op=op, value=value)


def default_stages() -> list[StageConfig]:
    """subscriber → lead → MQL → SQL → opportunity → customer → repeat → loyal, with decline stages
    at_risk/churned and reactivated.

    * MQL/SQL use the configured thresholds through the computed ``is_mql``/``is_sql``.
    * Decline follows the BG/NBD model: churned when P(alive) < 0.5 (the Bayes decision: dropped out more
      likely than not); at risk when P(alive) < 0.6, or when silent for over two usual purchase gaps.
      On simulated data the model's expected number of dropped-out customers, the sum of 1 - P(alive),
      matches the simulated truth to within a fraction of a percent; the thresholds turn that probability
      into a stage per contact (see ``tests/core/test_ground_truth.py`` for the agreement measured).
    * Reactivated: was at risk or churned last run and bought since; stays reactivated while that
      purchase is under 90 days old.
    """
    return [
        StageConfig(name="subscriber", action="nurture", hubspot_lifecyclestage="subscriber"),
        StageConfig(name="lead", action="nurture", hubspot_lifecyclestage="lead",
                    criteria=[_c("engagement_score", "gte", 10.0)]),
        StageConfig(name="marketing_qualified", action="nurture", hubspot_lifecyclestage="marketingqualifiedlead",
                    criteria=[_c("is_mql", "eq", True)]),
        StageConfig(name="sales_qualified", action="hand_to_sales",
                    hubspot_lifecyclestage="salesqualifiedlead", criteria=[_c("is_sql", "eq", True)]),
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
                    any_of=[[_c("p_alive", "lt", AT_RISK_P_ALIVE)], [_c("recency_ratio", "gt", AT_RISK_GAPS)]]),
        StageConfig(name="churned", kind="decline", action="win_back", hubspot_lifecyclestage="customer",
                    criteria=[_c("won_deals", "gte", 1.0), _c("p_alive", "lt", CHURN_P_ALIVE)]),
        StageConfig(name="reactivated", kind="reactivation", action="onboard", hubspot_lifecyclestage="customer",
                    any_of=[
                        [_c("previous_stage", "in", ["at_risk", "churned"]), _c("purchases_in_stage", "gte", 1.0)],
                        [_c("previous_stage", "eq", "reactivated"), _c("days_since_last_purchase", "lte", 90.0)],
                    ]),
    ]


def example_scoring_rules() -> list[ScoringRule]:
    """Fit and engagement rules on HubSpot property names (as in ``examples/hubspot.toml``), including the
    negative rule "unsubscribed within 7 days of joining: -20", written with the computed
    ``days_to_unsubscribe`` (days from the contact's creation to ``unsubscribed_at``)."""
    return [
        ScoringRule(name="Senior decision maker", kind="fit", points=25, any_of=[
            [_c("jobtitle", "contains", word)] for word in ("CEO", "CTO", "CFO", "COO", "Founder", "Owner", "VP",
                                                            "Head", "Director")
        ]),
        ScoringRule(name="Manager", kind="fit", points=10, criteria=[_c("jobtitle", "contains", "Manager")]),
        ScoringRule(name="Company of 50+ employees", kind="fit", points=15,
                    criteria=[_c("numemployees", "gte", 50.0)]),
        ScoringRule(name="Target industry", kind="fit", points=10, criteria=[
            _c("industry", "in", ["Software", "Financial Services", "Telecommunications",
                                  "Marketing and Advertising"])]),
        ScoringRule(name="Student", kind="fit", points=-15, criteria=[_c("jobtitle", "contains", "Student")]),
        ScoringRule(name="Email clicks", kind="engagement", points=3, per="hs_email_click", cap=20,
                    decay_half_life_days=180, decay_field="hs_email_last_open_date"),
        ScoringRule(name="Page views", kind="engagement", points=0.5, per="hs_analytics_num_page_views", cap=15),
        ScoringRule(name="Form submissions", kind="engagement", points=10, per="num_conversion_events", cap=30,
                    decay_half_life_days=365, decay_field="recent_conversion_date"),
        ScoringRule(name="Unsubscribed within 7 days of joining", kind="engagement", points=-20,
                    criteria=[_c("days_to_unsubscribe", "lte", 7.0)]),
        ScoringRule(name="Email bounced", kind="engagement", points=-10, criteria=[_c("hs_email_bounce", "gte", 1.0)]),
    ]


def example_action_rules() -> list[ActionRule]:
    """Next-best-action overrides: renewal offer when a contract ends within 60 days; a retention call for
    high-value customers whose activity is declining; warranty extension for one-time buyers near a year."""
    return [
        ActionRule(action="renewal_offer", criteria=[_c("contract_end_date", "within_next", "60d")]),
        ActionRule(action="retention_call", stages=["at_risk", "churned"],
                   criteria=[_c("clv_percentile", "gte", 80.0)]),
        ActionRule(action="warranty_extension_offer", stages=["customer"],
                   criteria=[_c("days_since_last_purchase", "between", [300.0, 365.0])]),
    ]
