"""Typed records at the edges: what connectors return and what the sync writes back.

The engine does not work on these objects one by one: :mod:`core.columns` converts them once into numpy
columns. Pydantic validates here, at the edge, so bad CRM data is caught with the record's id and field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

PropertyValue = str | float | int | bool | datetime | None


class DealStatus(StrEnum):
    """Where a deal stands: still open, closed won (a purchase) or closed lost."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    # CRMs send naive timestamps in UTC (Salesforce) or with an offset (HubSpot): store all as aware UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Contact(BaseModel):
    """A person in the CRM, with only the properties the configuration needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    email: str | None = None
    created_at: datetime
    updated_at: datetime | None = None
    properties: dict[str, PropertyValue] = Field(default_factory=dict)
    archived: bool = False

    _utc_times = field_validator("created_at", "updated_at")(_utc)


class Deal(BaseModel):
    """A deal/opportunity; a won deal with a close date is a purchase for the CLV models."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    amount: float | None = None
    currency: str | None = None
    pipeline: str | None = None
    stage: str | None = None
    status: DealStatus = DealStatus.OPEN
    created_at: datetime
    closed_at: datetime | None = None
    updated_at: datetime | None = None
    contact_ids: tuple[str, ...] = ()
    properties: dict[str, PropertyValue] = Field(default_factory=dict)
    archived: bool = False

    _utc_times = field_validator("created_at", "closed_at", "updated_at")(_utc)


class Enrichment(BaseModel):
    """What we compute for one contact and write back as our own custom fields.

    Field names are our logical names; each connector maps them to its CRM's property names
    (HubSpot ``clm_*`` properties, Salesforce ``CLM_*__c`` fields).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    contact_id: str
    stage: str
    stage_since: datetime
    lead_score: float
    fit_score: float
    engagement_score: float
    grade: str
    conversion_probability: float | None = None
    clv: float
    historical_value: float
    expected_purchases: float
    p_alive: float | None = None
    next_best_action: str
    computed_at: datetime
    # Optional fields (core.fields.OPTIONAL_OUTPUT_FIELDS): None when not computed or not a customer.
    clv_low: float | None = None
    clv_high: float | None = None
    p_alive_low: float | None = None
    p_alive_high: float | None = None
    expected_purchases_low: float | None = None
    expected_purchases_high: float | None = None
    score_reasons: str | None = None
    predictive_reasons: str | None = None


class FieldType(StrEnum):
    """Types a value can have, shared by config declarations, criteria checks and CRM field definitions."""

    NUMBER = "number"
    STRING = "string"
    DATETIME = "datetime"
    BOOL = "bool"
    ENUM = "enum"


class FieldSpec(BaseModel):
    """One field we own in the CRM: logical name, type, label and, for enumerations, its options."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: FieldType
    label: str
    description: str
    options: tuple[str, ...] = ()


def property_dict(values: dict[str, Any]) -> dict[str, PropertyValue]:
    """Keep only the scalar values a record property may hold (drops nested CRM structures)."""
    return {k: v for k, v in values.items() if v is None or isinstance(v, str | float | int | bool | datetime)}
