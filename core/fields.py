"""Names and types of the values the engine computes per contact, usable in criteria next to CRM properties.

Criteria in the configuration are type-checked against this registry at load time, so a typo or an operator
that makes no sense for a field is reported before any data is pulled.
"""

from __future__ import annotations

from core.models import FieldSpec, FieldType

N, S, D, B = FieldType.NUMBER, FieldType.STRING, FieldType.DATETIME, FieldType.BOOL

#: Deal aggregates per contact (from the deals attributed to it).
DEAL_AGGREGATES: dict[str, FieldType] = {
    "open_deals": N,
    "won_deals": N,
    "lost_deals": N,
    "total_won_amount": N,
    "first_purchase_at": D,
    "last_purchase_at": D,
    "days_since_last_purchase": N,
    "days_since_created": N,
    "created_at": D,
}

#: Values derived from contact properties (unknown when the property is not declared or not set).
#: ``days_to_unsubscribe``: days from the contact's creation to ``unsubscribed_at`` (the generator's and our
#: HubSpot examples' name for the opt-out date), so "unsubscribed within 7 days of joining" is
#: ``{ field = "days_to_unsubscribe", op = "lte", value = 7 }``.
CONTACT_DERIVED: dict[str, FieldType] = {
    "days_to_unsubscribe": N,
}

#: The contact property ``days_to_unsubscribe`` is computed from.
UNSUBSCRIBE_DATE_PROPERTY = "unsubscribed_at"

#: Values from the CLV models. Times are in days (``recency``: first to last purchase; ``age``: first purchase
#: to as-of; ``usual_gap_days``: the expected time between purchases; ``recency_ratio``: days since the last
#: purchase over the usual gap). ``frequency`` counts repeat purchase days. Unknown for non-customers.
CLV_VALUES: dict[str, FieldType] = {
    "frequency": N,
    "recency": N,
    "age": N,
    "p_alive": N,
    "expected_purchases": N,
    "expected_spend": N,
    "clv": N,
    "clv_percentile": N,
    "historical_value": N,
    "usual_gap_days": N,
    "recency_ratio": N,
}

#: Values from scoring (computed before stages, so stages and actions may use them; scoring rules may not).
SCORE_VALUES: dict[str, FieldType] = {
    "lead_score": N,
    "fit_score": N,
    "engagement_score": N,
    "grade": FieldType.ENUM,
    "conversion_probability": N,
    "is_mql": B,
    "is_sql": B,
}

#: Values from the previous run (stage rules such as reactivation use them): the stage it had, the days since it
#: entered that stage, and the purchases made since then. Unknown on a contact's first run.
HISTORY_VALUES: dict[str, FieldType] = {
    "previous_stage": FieldType.ENUM,
    "days_in_stage": N,
    "purchases_in_stage": N,
}

#: Everything a scoring rule may refer to besides contact properties.
SCORING_FIELDS: dict[str, FieldType] = {**DEAL_AGGREGATES, **CONTACT_DERIVED}

#: Everything a stage or action criterion may refer to besides contact properties.
STAGE_FIELDS: dict[str, FieldType] = {
    **DEAL_AGGREGATES, **CONTACT_DERIVED, **CLV_VALUES, **SCORE_VALUES, **HISTORY_VALUES,
}

#: The fields we own in the CRM and write back (logical names; connectors map them to CRM names).
OUTPUT_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(name="stage", type=FieldType.ENUM, label="CLM lifecycle stage",
              description="Lifecycle stage computed by crm-lifecycle"),
    FieldSpec(name="stage_since", type=FieldType.DATETIME, label="CLM stage since",
              description="When the contact entered its current CLM stage"),
    FieldSpec(name="lead_score", type=FieldType.NUMBER, label="CLM lead score",
              description="Lead score 0-100 (fit + engagement)"),
    FieldSpec(name="fit_score", type=FieldType.NUMBER, label="CLM fit score", description="Fit points, 0-100"),
    FieldSpec(name="engagement_score", type=FieldType.NUMBER, label="CLM engagement score",
              description="Engagement points after decay, 0-100"),
    FieldSpec(name="grade", type=FieldType.ENUM, label="CLM grade", description="Lead grade A-D",
              options=("A", "B", "C", "D")),
    FieldSpec(name="conversion_probability", type=FieldType.NUMBER, label="CLM conversion probability",
              description="Predicted probability of becoming a customer"),
    FieldSpec(name="clv", type=FieldType.NUMBER, label="CLM predicted CLV",
              description="Discounted predicted customer lifetime value over the configured horizon"),
    FieldSpec(name="historical_value", type=FieldType.NUMBER, label="CLM historical value",
              description="Sum of won deal amounts x margin"),
    FieldSpec(name="expected_purchases", type=FieldType.NUMBER, label="CLM expected purchases",
              description="Expected purchases over the CLV horizon"),
    FieldSpec(name="p_alive", type=FieldType.NUMBER, label="CLM P(alive)",
              description="Probability the customer is still active (BG/NBD)"),
    FieldSpec(name="next_best_action", type=FieldType.ENUM, label="CLM next best action",
              description="Recommended action for this contact"),
    FieldSpec(name="computed_at", type=FieldType.DATETIME, label="CLM computed at",
              description="When crm-lifecycle last computed these values"),
)

#: Our fields written only when ``sync.write_fields`` lists them (or, for the engine's columns, when
#: ``clv.intervals`` is on): ``clv_low``/``clv_high``, ``p_alive_low``/``p_alive_high`` and
#: ``expected_purchases_low``/``expected_purchases_high`` bound each output by the central 90% of its values under
#: the models' parameter uncertainty (:func:`core.clv.value.score_intervals`), which costs a parameter draw.
#: ``score_reasons`` explains the lead score by its rules (:func:`core.scoring.explain`); ``predictive_reasons``
#: the conversion probability by its features (:mod:`core.predictive`), None without a probability.
#: They are separate fields because they explain separate numbers: points that add up to the lead score versus
#: factors that multiply the conversion odds.
OPTIONAL_OUTPUT_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(name="clv_low", type=FieldType.NUMBER, label="CLM predicted CLV (low)",
              description="Lower bound (5th percentile) of the predicted CLV under parameter uncertainty"),
    FieldSpec(name="clv_high", type=FieldType.NUMBER, label="CLM predicted CLV (high)",
              description="Upper bound (95th percentile) of the predicted CLV under parameter uncertainty"),
    FieldSpec(name="p_alive_low", type=FieldType.NUMBER, label="CLM P(alive) (low)",
              description="Lower bound (5th percentile) of P(alive) under parameter uncertainty"),
    FieldSpec(name="p_alive_high", type=FieldType.NUMBER, label="CLM P(alive) (high)",
              description="Upper bound (95th percentile) of P(alive) under parameter uncertainty"),
    FieldSpec(name="expected_purchases_low", type=FieldType.NUMBER, label="CLM expected purchases (low)",
              description="Lower bound (5th percentile) of the expected purchases under parameter uncertainty"),
    FieldSpec(name="expected_purchases_high", type=FieldType.NUMBER, label="CLM expected purchases (high)",
              description="Upper bound (95th percentile) of the expected purchases under parameter uncertainty"),
    FieldSpec(name="score_reasons", type=FieldType.STRING, label="CLM score reasons",
              description="The scoring rules that gave or took the most points, e.g. "
                          "\"+25 Senior decision maker; -20 Unsubscribed within 7 days\""),
    FieldSpec(name="predictive_reasons", type=FieldType.STRING, label="CLM conversion factors",
              description="The features that move the predicted conversion odds most, as odds multipliers "
                          "against the average contact, e.g. \"x2.4 hs_email_click; x0.5 days_since_created\""),
)


def option_label(value: str) -> str:
    """The label a CRM shows for one of our option values, while the value stored stays ours: ``"Marketing
    qualified"`` for ``marketing_qualified``, ``"Yes"``/``"No"`` for booleans (as HubSpot labels its own
    checkboxes), a value with capitals kept as written (``"A"``, ``"VIP_tier"`` -> ``"VIP tier"``)."""
    if value in ("true", "false"):
        return "Yes" if value == "true" else "No"
    text = value.replace("_", " ").strip() or value
    return text[:1].upper() + text[1:]
