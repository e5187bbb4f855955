"""Preflight: every CRM property the configuration reads exists in the CRM with a type that can hold what the
configuration declares, checked before a run computes.

A misspelled property (``jobtitel``) is not an error for a CRM: HubSpot returns no value for a property it does
not know, so every contact looks as if it had none, and the run would lower the fit score of everyone a rule on
it gave points to. So a run asks the CRM which properties exist, names each missing one with the closest
existing name, and does not write the fields computed from it (issue 16). A property declared ``number`` that the
CRM holds as a date or a checkbox is the same mistake in another form (no value would ever compare as a number),
so it blocks the same fields. A text property holding numbers is not refused: its values are parsed one by one
and the ones that do not parse are flagged by the data-quality checks.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from connectors.base import Connector, DescribesProperties
from core.config import ClmConfig, Condition
from core.fields import OPTIONAL_OUTPUT_FIELDS, OUTPUT_FIELDS
from core.models import FieldSpec, FieldType

#: Our fields that follow from the lead score (the stage through the MQL/SQL thresholds, the action from it).
SCORE_FIELDS = ("lead_score", "grade", "stage", "stage_since", "next_best_action")
STAGE_FIELDS = ("stage", "stage_since", "next_best_action")


#: CRM type names (HubSpot's property ``type``, Salesforce describe's field ``type``) by what they can hold.
_NUMERIC = {"number", "double", "currency", "percent", "int", "long"}
_DATES = {"date", "datetime"}
_CHECKBOXES = {"bool", "boolean"}
#: A declared type against the CRM types whose values can never read as it (every other pairing may: text holds
#: anything, an enumeration's option values may be numbers, a number may be an epoch).
_NEVER = {FieldType.NUMBER: _DATES | _CHECKBOXES, FieldType.DATETIME: _CHECKBOXES,
          FieldType.BOOL: _NUMERIC | _DATES}


@dataclass(frozen=True)
class MissingProperty:
    """A configured property the CRM does not have (or holds with a type that cannot be read as declared), and
    the fields of ours that depend on it."""

    object_type: str
    """``contact`` or ``deal``."""
    name: str
    suggestion: str | None
    blocks: tuple[str, ...]
    """Our fields not written while it is missing (empty for a property only the report reads)."""
    crm_type: str | None = None
    """Set when the property exists but with this incompatible CRM type."""
    declared: str | None = None
    """The type the configuration declares, when ``crm_type`` is set."""

    def describe(self) -> str:
        """One line for people: what is missing or mistyped, the likely fix, what is not written."""
        section = "data.contact_properties" if self.object_type == "contact" else "data.deal_properties"
        blocked = (f"; not written until it is fixed: {', '.join(self.blocks)}" if self.blocks
                   else "; its values are read as empty")
        if self.crm_type is not None:
            return (f"{section}.{self.name}: declared '{self.declared}' but the CRM's {self.object_type} property "
                    f"'{self.name}' is of type '{self.crm_type}', whose values never read as {self.declared} — "
                    f"declare its real type or point the configuration at another property{blocked}")
        hint = f"did you mean '{self.suggestion}'? " if self.suggestion else ""
        return (f"{section}.{self.name}: the CRM has no {self.object_type} property '{self.name}' — {hint}"
                f"fix the name in the configuration{blocked}")


def missing_properties(config: ClmConfig, connector: Connector) -> list[MissingProperty]:
    """The configured contact and deal properties the CRM lacks or holds with an incompatible type (none when
    the connector cannot list them)."""
    if not isinstance(connector, DescribesProperties):
        return []
    meddic = {v for v in config.meddic.model_dump().values() if v}
    return _missing(config, connector, sorted(config.data.contact_properties),
                    sorted(set(config.data.deal_properties) | meddic))


def _missing(config: ClmConfig, connector: DescribesProperties, contact_props: Iterable[str],
             deal_props: Iterable[str]) -> list[MissingProperty]:
    sensitive = getattr(connector, "properties_case_sensitive", True)
    out: list[MissingProperty] = []
    for object_type, wanted in (("contact", contact_props), ("deal", deal_props)):
        # A relationship path (Salesforce ``Account.Industry``) is not in the object's own list: the pull checks it.
        names = [n for n in wanted if "." not in n]
        if not names:
            continue
        declared = config.data.contact_properties if object_type == "contact" else config.data.deal_properties
        existing = connector.crm_properties(object_type)
        by_key = {(n if sensitive else n.lower()): n for n in existing}
        for name in names:
            blocks = dependent_fields(config, name) if object_type == "contact" else ()
            found = by_key.get(name if sensitive else name.lower())
            if found is not None:
                crm_type = existing[found].lower()
                kind = declared.get(name)
                if kind is not None and crm_type in _NEVER.get(kind, set()):
                    out.append(MissingProperty(object_type, name, None, blocks, existing[found], kind.value))
                continue
            close = difflib.get_close_matches(name if sensitive else name.lower(), list(by_key), n=1)
            out.append(MissingProperty(object_type, name, by_key[close[0]] if close else None, blocks))
    return out


def dependent_fields(config: ClmConfig, prop: str) -> tuple[str, ...]:
    """Our fields computed from a contact property, in output order."""
    blocked: set[str] = set()
    for rule in config.scoring.rules:
        if prop in _fields(rule.criteria, rule.any_of) or prop in (rule.per, rule.decay_field):
            blocked.update((f"{rule.kind}_score", *SCORE_FIELDS, "score_reasons"))
    if any(prop in _fields(stage.criteria, stage.any_of) for stage in config.stages):
        blocked.update(STAGE_FIELDS)
    if any(prop in _fields(action.criteria, action.any_of) for action in config.actions):
        blocked.add("next_best_action")
    if config.predictive.enabled and prop in config.predictive.features:
        blocked.update(("conversion_probability", "predictive_reasons"))
    # Optional fields count only when written: a reason nobody asked for is no loss to report.
    optional = [spec for spec in OPTIONAL_OUTPUT_FIELDS if spec.name in (config.sync.write_fields or ())]
    return tuple(spec.name for spec in (*OUTPUT_FIELDS, *optional) if spec.name in blocked)


def _fields(criteria: list[Condition], any_of: list[list[Condition]]) -> set[str]:
    return {c.field for c in criteria} | {c.field for group in any_of for c in group}


def withhold(config: ClmConfig, connector: Connector, specs: list[FieldSpec],
             problems: list[str]) -> list[FieldSpec]:
    """``specs`` without the fields computed from a missing property; each missing property added to
    ``problems`` (first, so it is the first thing a person reads after the run)."""
    missing = missing_properties(config, connector)
    problems[:0] = [m.describe() for m in missing]
    blocked = {name for m in missing for name in m.blocks}
    return [spec for spec in specs if spec.name not in blocked]
