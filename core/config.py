"""The whole configuration as pydantic models, loaded from ``clm.toml``.

Secrets never live in the file: it names environment variables (``token_env = "HUBSPOT_TOKEN"``) and
:func:`secret` reads them. Unknown keys are errors. :func:`load_config` reports every problem at once, each
with its key path (``stages[3].criteria[0].op``) and a hint.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from core.errors import AuthError, ConfigError, ConfigProblem
from core.fields import SCORING_FIELDS, STAGE_FIELDS
from core.models import FieldType

OPERATORS: tuple[str, ...] = (
    "eq", "neq", "lt", "lte", "gt", "gte", "between", "in", "not_in", "contains",
    "is_known", "is_unknown", "within_last", "not_within_last", "within_next",
)

#: Which operators make sense for which field type.
OPERATORS_BY_TYPE: dict[FieldType, frozenset[str]] = {
    FieldType.NUMBER: frozenset(
        {"eq", "neq", "lt", "lte", "gt", "gte", "between", "in", "not_in", "is_known", "is_unknown"}
    ),
    FieldType.STRING: frozenset({"eq", "neq", "in", "not_in", "contains", "is_known", "is_unknown"}),
    FieldType.ENUM: frozenset({"eq", "neq", "in", "not_in", "contains", "is_known", "is_unknown"}),
    FieldType.BOOL: frozenset({"eq", "neq", "is_known", "is_unknown"}),
    FieldType.DATETIME: frozenset(
        {"lt", "lte", "gt", "gte", "between", "within_last", "not_within_last", "within_next", "is_known",
         "is_unknown"}
    ),
}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdwmy])\s*$")
_DURATION_DAYS = {"h": 1 / 24, "d": 1.0, "w": 7.0, "m": 30.4375, "y": 365.25}
_SECRET_KEYS = {"token", "access_token", "password", "secret", "client_secret", "api_key", "security_token",
                "refresh_token", "private_key", "session_id"}


def duration_days(text: str) -> float:
    """Parse a duration such as ``30d``, ``12w``, ``6m``, ``1y`` or ``48h`` into days."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a duration — write a number and a unit: 48h, 30d, 12w, 6m, 1y")
    return float(match.group(1)) * _DURATION_DAYS[match.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """One filter, as in a CRM list filter: ``{ field = "won_deals", op = "gte", value = 2 }``.

    Validated against the declared contact properties and the engine's computed fields (passed as the
    validation context), so an unknown field, an operator that does not fit the field's type, or a value of
    the wrong shape fails at load time with the exact key path.
    """

    field: str
    op: str
    value: Any = Field(None, validate_default=True)

    @field_validator("field")
    @classmethod
    def _known_field(cls, name: str, info: ValidationInfo) -> str:
        known = _known_fields(info)
        if known is not None and name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            scope = info.context.get("scope", "") if isinstance(info.context, dict) else ""
            raise ValueError(f"unknown field '{name}'{scope} — {hint}"
                             "declare CRM properties under [data.contact_properties]")
        return name

    @field_validator("op")
    @classmethod
    def _known_op(cls, op: str, info: ValidationInfo) -> str:
        if op not in OPERATORS:
            raise ValueError(f"unknown operator '{op}' — use one of: {', '.join(OPERATORS)}")
        kind = _field_type(info)
        if kind is not None and op not in OPERATORS_BY_TYPE[kind]:
            allowed = ", ".join(o for o in OPERATORS if o in OPERATORS_BY_TYPE[kind])
            raise ValueError(f"operator '{op}' does not apply to {kind.value} field "
                             f"'{info.data['field']}' — use one of: {allowed}")
        return op

    @field_validator("value")
    @classmethod
    def _value_fits(cls, value: Any, info: ValidationInfo) -> Any:
        op = info.data.get("op")
        if op is None:
            return value  # the operator itself is wrong; that error is reported on its own
        kind = _field_type(info)
        if op in ("is_known", "is_unknown"):
            if value is not None:
                raise ValueError(f"'{op}' takes no value — remove 'value'")
            return value
        if value is None:
            raise ValueError(f"'{op}' needs a value")
        if op in ("within_last", "not_within_last", "within_next"):
            if not isinstance(value, str):
                raise ValueError(f"'{op}' needs a duration such as \"30d\", got {value!r}")
            duration_days(value)
            return value
        if op == "between":
            if not (isinstance(value, list) and len(value) == 2):
                raise ValueError(f"'between' needs [low, high], got {value!r}")
            low, high = (_scalar(v, kind, op) for v in value)
            if isinstance(low, float) and isinstance(high, float) and low > high:
                raise ValueError(f"'between' needs low ≤ high, got {value!r}")
            return [low, high]
        if op in ("in", "not_in"):
            if not (isinstance(value, list) and value):
                raise ValueError(f"'{op}' needs a non-empty list, got {value!r}")
            return [_scalar(v, kind, op) for v in value]
        if op == "contains" and not isinstance(value, str):
            raise ValueError(f"'contains' needs text, got {value!r}")
        return _scalar(value, kind, op)


def _known_fields(info: ValidationInfo) -> Mapping[str, FieldType] | None:
    context = info.context if isinstance(info.context, dict) else None
    if context is None:
        return None
    fields: Mapping[str, FieldType] = context.get("fields", {})
    return fields


def _field_type(info: ValidationInfo) -> FieldType | None:
    known = _known_fields(info)
    name = info.data.get("field")
    return known.get(name) if known is not None and name is not None else None


def _scalar(value: Any, kind: FieldType | None, op: str) -> Any:
    if kind is FieldType.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"'{op}' on a number field needs a number, got {value!r}")
        return float(value)
    if kind is FieldType.BOOL:
        if not isinstance(value, bool):
            raise ValueError(f"'{op}' on a true/false field needs true or false, got {value!r}")
        return value
    if kind is FieldType.DATETIME:
        from datetime import date, datetime

        if isinstance(value, datetime | date):
            return value.isoformat()
        if not isinstance(value, str):
            raise ValueError(f"'{op}' on a date field needs a date such as \"2025-01-31\", got {value!r}")
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"'{value}' is not a date — write it as \"2025-01-31\" or \"2025-01-31T12:00:00Z\"")\
                from None
        return value
    if kind in (FieldType.STRING, FieldType.ENUM) and not isinstance(value, str | int | float):
        raise ValueError(f"'{op}' on a text field needs text, got {value!r}")
    return value


Conditions = list[Condition]


class Criteria(_Strict):
    """A matching rule: every condition in ``criteria`` holds, and (when given) at least one ``any_of``
    group holds (each group's conditions all hold). Empty criteria match every contact."""

    criteria: Conditions = Field(default_factory=list)
    any_of: list[Conditions] = Field(default_factory=list)


# --- connections -------------------------------------------------------------------------------------


class HubSpotConfig(_Strict):
    """Connection to HubSpot: private app token (or OAuth refresh) from env vars, limits by tier."""

    token_env: str = "HUBSPOT_TOKEN"
    client_id_env: str | None = None
    client_secret_env: str | None = None
    refresh_token_env: str | None = None
    base_url: str = "https://api.hubapi.com"
    # HubSpot's documented defaults (developers.hubspot.com/docs/api/usage-details): 100 requests per
    # 10 s for free/starter private apps, 190 for professional/enterprise; search 5 requests per second.
    requests_per_10s: int = Field(100, ge=1, le=1000)
    daily_limit: int = Field(250_000, ge=1)
    search_per_second: int = Field(5, ge=1, le=100)
    batch_size: int = Field(100, ge=1, le=100)
    page_size: int = Field(100, ge=1, le=100)
    search_page_size: int = Field(200, ge=1, le=200)
    max_concurrency: int = Field(4, ge=1, le=32)
    property_group: str = "crm_lifecycle"
    property_prefix: str = "clm_"
    write_native_lifecyclestage: bool = False
    # HubSpot's search index trails edits by seconds (more under load); each incremental window re-reads this
    # much before the cursor so a record indexed late is still read (see connectors/hubspot/pull.py).
    search_lookback_seconds: int = Field(300, ge=0, le=86_400)
    # List pages (100 deals each) of the association sweep per incremental run: re-associating a deal does not
    # change its modified time, so attribution is refreshed by re-reading every deal within a bounded time.
    association_sweep_pages: int = Field(20, ge=0, le=10_000)


SalesforceObject = Literal["Contact", "Lead"]


class SalesforceConfig(_Strict):
    """Connection to Salesforce via simple-salesforce; every secret from an env var."""

    auth: Literal["token", "password", "jwt"] = "token"
    instance_url_env: str = "SF_INSTANCE_URL"
    access_token_env: str | None = "SF_ACCESS_TOKEN"
    username_env: str | None = None
    password_env: str | None = None
    security_token_env: str | None = None
    consumer_key_env: str | None = None
    private_key_file_env: str | None = None
    domain: str = "login"
    api_version: str = "60.0"
    objects: list[SalesforceObject] = Field(default_factory=lambda: list[SalesforceObject](["Contact"]))
    bulk_threshold: int = Field(10_000, ge=0)
    page_size: int = Field(2000, ge=200, le=2000)
    batch_size: int = Field(200, ge=1, le=200)
    api_reserve_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    permission_set: str = "CLM_Integration"
    field_suffix: str = "__c"
    field_prefix: str = "CLM_"

    @model_validator(mode="after")
    def _auth_complete(self) -> SalesforceConfig:
        needed = {
            "token": ("access_token_env",),
            "password": ("username_env", "password_env"),
            "jwt": ("username_env", "consumer_key_env", "private_key_file_env"),
        }[self.auth]
        missing = [key for key in needed if getattr(self, key) is None]
        if missing:
            raise ValueError(f"auth = '{self.auth}' needs {', '.join(missing)} (names of environment variables)")
        return self


class CrmConfig(_Strict):
    """Which CRM this configuration syncs with."""

    kind: Literal["hubspot", "salesforce"] = "hubspot"


# --- data and computation ------------------------------------------------------------------------------


class DataConfig(_Strict):
    """Which CRM properties the engine reads, with their types, and how deals are tied to contacts."""

    contact_properties: dict[str, FieldType] = Field(default_factory=dict)
    deal_properties: dict[str, FieldType] = Field(default_factory=dict)
    attribution: Literal["primary", "all"] = "primary"


class ClvConfig(_Strict):
    """Customer lifetime value: model, time unit, horizon, discounting and margin."""

    model: Literal["bgnbd", "historical"] = "bgnbd"
    time_unit: Literal["days", "weeks"] = "weeks"
    horizon: float = Field(52.0, gt=0, description="in time units")
    annual_discount_rate: float = Field(0.10, ge=0.0, lt=1.0)
    margin: float = Field(1.0, gt=0.0, le=1.0)
    min_repeat_customers: int = Field(20, ge=1)


class ScoringRule(Criteria):
    """Points for contacts that match; ``per`` multiplies by a numeric field (e.g. per email click) and
    ``cap`` bounds the rule's points. Engagement rules may decay with a half-life on a date field."""

    name: str
    kind: Literal["fit", "engagement"]
    points: float
    per: str | None = None
    cap: float | None = Field(None, gt=0)
    decay_half_life_days: float | None = Field(None, gt=0)
    decay_field: str | None = None

    @model_validator(mode="after")
    def _decay_complete(self) -> ScoringRule:
        if (self.decay_half_life_days is None) != (self.decay_field is None):
            raise ValueError("decay needs both decay_half_life_days and decay_field (a date field)")
        if self.decay_half_life_days is not None and self.kind != "engagement":
            raise ValueError("only engagement rules decay — set kind = \"engagement\" or remove the decay")
        return self


class GradeThresholds(_Strict):
    """Lowest score for each grade; below ``C`` is ``D``."""

    A: float = Field(75, ge=0, le=100)
    B: float = Field(50, ge=0, le=100)
    C: float = Field(25, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> GradeThresholds:
        if not self.A > self.B > self.C:
            raise ValueError(f"grade thresholds must fall from A to C, got A={self.A}, B={self.B}, C={self.C}")
        return self


class ScoringConfig(_Strict):
    """Rule-based lead scoring: fit and engagement rules, grades, and the MQL/SQL thresholds."""

    rules: list[ScoringRule] = Field(default_factory=list)
    mql_threshold: float = Field(40, ge=0, le=100)
    sql_threshold: float = Field(70, ge=0, le=100)
    grades: GradeThresholds = Field(default_factory=GradeThresholds)

    @model_validator(mode="after")
    def _thresholds(self) -> ScoringConfig:
        if self.sql_threshold < self.mql_threshold:
            raise ValueError(f"sql_threshold ({self.sql_threshold}) must be ≥ mql_threshold ({self.mql_threshold})")
        return self


class PredictiveConfig(_Strict):
    """Predictive conversion score learned from history, refused when its quality is below the floor."""

    enabled: bool = False
    model: Literal["logistic", "gradient_boosting"] = "logistic"
    features: list[str] = Field(default_factory=list)
    horizon_days: float = Field(180, gt=0, description="label: became a customer within this after the cut-off")
    min_auc: float = Field(0.65, ge=0.5, le=1.0)
    min_positives: int = Field(50, ge=1)
    min_contacts: int = Field(500, ge=10)
    holdout_fraction: float = Field(0.25, gt=0.0, lt=0.9)
    seed: int = 0


class StageConfig(Criteria):
    """One lifecycle stage. ``progress`` stages are ordered (the highest matching wins); ``decline``
    stages override progress stages when they match (at_risk, churned); ``reactivation`` overrides both."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["progress", "decline", "reactivation"] = "progress"
    action: str = "none"
    hubspot_lifecyclestage: str | None = None


class ActionRule(Criteria):
    """A next-best-action override: when it matches (and the contact is in one of ``stages``, if given)
    the action replaces the stage's default. Rules are tried in order; the first match wins."""

    action: str
    stages: list[str] = Field(default_factory=list)


class MeddicConfig(_Strict):
    """Deal properties that hold each MEDDIC item; a non-empty value means the item is known."""

    metrics: str | None = "meddic_metrics"
    economic_buyer: str | None = "meddic_economic_buyer"
    decision_criteria: str | None = "meddic_decision_criteria"
    decision_process: str | None = "meddic_decision_process"
    identify_pain: str | None = "meddic_identify_pain"
    champion: str | None = "meddic_champion"


class SyncConfig(_Strict):
    """How the sync writes back."""

    state_path: Path = Path(".clm/state.db")
    on_conflict: Literal["overwrite", "skip", "report"] = "report"
    numeric_tolerance: float = Field(0.005, ge=0.0, description="relative change below which no write is made")
    write_fields: list[str] | None = None
    field_map: dict[str, str] = Field(default_factory=dict, description="our field -> a CRM field we do not own")


def _default_stages() -> list[StageConfig]:
    from core.defaults import default_stages

    return default_stages()


class ClmConfig(_Strict):
    """The whole configuration."""

    crm: CrmConfig = Field(default_factory=CrmConfig)
    hubspot: HubSpotConfig = Field(default_factory=HubSpotConfig)
    salesforce: SalesforceConfig | None = None
    data: DataConfig = Field(default_factory=DataConfig)
    clv: ClvConfig = Field(default_factory=ClvConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    predictive: PredictiveConfig = Field(default_factory=PredictiveConfig)
    stages: list[StageConfig] = Field(default_factory=_default_stages, min_length=1)
    actions: list[ActionRule] = Field(default_factory=list)
    meddic: MeddicConfig = Field(default_factory=MeddicConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)

    @model_validator(mode="after")
    def _consistent(self) -> ClmConfig:
        names = [s.name for s in self.stages]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"stage names must be unique; repeated: {', '.join(duplicates)}")
        if self.crm.kind == "salesforce" and self.salesforce is None:
            raise ValueError("crm.kind = 'salesforce' needs a [salesforce] section")
        return self


# --- loading -------------------------------------------------------------------------------------------



def _context_fields(raw: Mapping[str, Any], computed: Mapping[str, FieldType]) -> dict[str, FieldType]:
    fields: dict[str, FieldType] = dict(computed)
    declared = raw.get("data", {}).get("contact_properties", {}) if isinstance(raw.get("data"), dict) else {}
    if isinstance(declared, dict):
        for name, kind in declared.items():
            if kind in FieldType._value2member_map_:
                fields[name] = FieldType(kind)
    return fields


def parse_config(raw: Mapping[str, Any], source: str | None = None) -> ClmConfig:
    """Validate a configuration mapping; raise :class:`ConfigError` listing every problem."""
    problems = _secret_problems(raw)
    stage_fields = _context_fields(raw, STAGE_FIELDS)
    try:
        config = ClmConfig.model_validate(raw, context={"fields": stage_fields})
    except ValidationError as exc:
        secret_paths = {p.path for p in problems}
        problems.extend(p for p in _problems(exc) if p.path not in secret_paths)
        config = None
    # Scoring rules cannot use values computed from the score itself: validate them separately, narrower.
    scoring = raw.get("scoring")
    if isinstance(scoring, dict) and isinstance(scoring.get("rules"), list):
        scoring_fields = _context_fields(raw, SCORING_FIELDS)
        try:
            ScoringConfig.model_validate(scoring, context={
                "fields": scoring_fields,
                "scope": " for a scoring rule (scoring rules use contact properties and deal aggregates, "
                         "not computed scores or CLV)",
            })
        except ValidationError as exc:
            known = {str(p) for p in problems}
            for problem in _problems(exc, prefix=("scoring",)):
                if str(problem) not in known:
                    problems.append(problem)
    if config is not None and not problems:
        problems.extend(_reference_problems(config))
    if problems:
        raise ConfigError(problems, source)
    assert config is not None
    return config


def load_config(path: Path) -> ClmConfig:
    """Read and validate ``clm.toml``; raise :class:`ConfigError` with every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("", f"{path} does not exist — run `clm init` to write one")]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem("", f"not valid TOML: {exc}")], str(path)) from None
    return parse_config(raw, str(path))


def secret(env_name: str | None, key_path: str) -> str:
    """Read a secret from the environment variable the configuration names at ``key_path``."""
    if not env_name:
        raise AuthError(f"{key_path} is not set", hint=f"set {key_path} to the name of an environment variable")
    value = os.environ.get(env_name, "").strip()
    if not value:
        raise AuthError(
            f"environment variable {env_name} is not set (named by {key_path})",
            hint=f"export {env_name}=... before running clm",
        )
    return value


def _secret_problems(raw: Mapping[str, Any], path: str = "") -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    for key, value in raw.items():
        here = f"{path}.{key}" if path else key
        if key in _SECRET_KEYS:
            problems.append(ConfigProblem(here, f"secrets are never read from the file — put it in an environment "
                                                f"variable and set {key}_env to its name"))
        elif isinstance(value, dict):
            problems.extend(_secret_problems(value, here))
    return problems


def _reference_problems(config: ClmConfig) -> list[ConfigProblem]:
    """Checks across sections that a single model cannot see."""
    problems: list[ConfigProblem] = []
    stage_names = {s.name for s in config.stages}
    for i, action in enumerate(config.actions):
        for j, stage in enumerate(action.stages):
            if stage not in stage_names:
                problems.append(ConfigProblem(f"actions[{i}].stages[{j}]",
                                              f"unknown stage '{stage}' — stages are: {', '.join(stage_names)}"))
    numeric = {name for name, kind in config.data.contact_properties.items() if kind is FieldType.NUMBER}
    numeric |= {name for name, kind in SCORING_FIELDS.items() if kind is FieldType.NUMBER}
    dates = {name for name, kind in config.data.contact_properties.items() if kind is FieldType.DATETIME}
    dates |= {name for name, kind in SCORING_FIELDS.items() if kind is FieldType.DATETIME}
    for i, rule in enumerate(config.scoring.rules):
        if rule.per is not None and rule.per not in numeric:
            problems.append(ConfigProblem(f"scoring.rules[{i}].per",
                                          f"'{rule.per}' is not a declared number field"))
        if rule.decay_field is not None and rule.decay_field not in dates:
            problems.append(ConfigProblem(f"scoring.rules[{i}].decay_field",
                                          f"'{rule.decay_field}' is not a declared datetime field"))
    for i, feature in enumerate(config.predictive.features):
        if feature not in config.data.contact_properties and feature not in SCORING_FIELDS:
            problems.append(ConfigProblem(f"predictive.features[{i}]",
                                          f"unknown feature '{feature}' — declare it under [data.contact_properties]"))
    if config.predictive.enabled and not config.predictive.features:
        problems.append(ConfigProblem("predictive.features", "predictive scoring is enabled but has no features"))
    return problems


def _problems(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = (*prefix, *error["loc"])
        problems.append(ConfigProblem(_path(loc), _message(error, loc)))
    return problems


def _path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error: Any, loc: tuple[str | int, ...]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        name = str(loc[-1])
        allowed = _fields_at(loc[:-1])
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(allowed)}"
        return f"unknown key '{name}' — {hint}"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        return "required key is missing"
    if kind == "enum" or kind == "literal_error":
        return f"{error['msg']} (got {error['input']!r})"
    return f"{error['msg']} (got {error.get('input')!r})"


def _fields_at(loc: tuple[str | int, ...]) -> list[str]:
    """The keys allowed at ``loc`` (for 'did you mean' hints)."""
    model: Any = ClmConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return []
        model = _unwrap(model.model_fields[part].annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin in (list, typing.Union, types.UnionType, Annotated):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0]
            continue
        if origin is dict:
            annotation = typing.get_args(annotation)[1]
            continue
        return annotation
