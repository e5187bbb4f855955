"""The whole configuration as pydantic models, loaded from ``clm.toml``.

Secrets never live in the file: it names environment variables (``token_env = "HUBSPOT_TOKEN"``) and
:func:`secret` reads them. Unknown keys are errors. :func:`load_config` reports every problem at once, each
with its key path (``stages[3].criteria[0].op``) and a hint.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from core.errors import AuthError, ConfigError, ConfigProblem
from core.fields import OPTIONAL_OUTPUT_FIELDS, OUTPUT_FIELDS, SCORING_FIELDS, STAGE_FIELDS
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
#: What an environment variable's name may be (POSIX: letters, digits and underscores, not starting with a digit).
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: Shapes of real credentials: HubSpot private app tokens (``pat-na1-…``), OAuth/JWT tokens (``eyJ…``), legacy
#: HubSpot API keys (UUIDs), Salesforce session ids (``00D…!…``), and common vendor key prefixes.
_SECRET_SHAPES = re.compile(
    r"^(pat-|eyJ|sk_|sk-|ghp_|gho_|xox[abp]-|AKIA|00D[A-Za-z0-9]{12,}!)"
    r"|^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    re.IGNORECASE,
)
#: Removed keys, with why: an unknown key error alone would not say where the feature went.
_REMOVED_KEYS = {
    "field_map": "writing to CRM fields crm-lifecycle does not own is not supported (it was never read) — "
                 "remove it; choose which of our fields are written with sync.write_fields",
}
#: Longest horizon any model is given: a century, in days (CLV and conversion horizons beyond it are typos).
_MAX_HORIZON_DAYS = 36_525.0


def looks_like_secret(text: str) -> bool:
    """Whether ``text`` looks like a credential rather than a name (used to refuse and never echo it).

    Known token shapes match; so does anything long that mixes upper case, lower case and digits, as random
    tokens do and variable names do not (``HUBSPOT_TOKEN_2`` does not).
    """
    if _SECRET_SHAPES.search(text):
        return True
    mixed = any(c.islower() for c in text) and any(c.isupper() for c in text) and any(c.isdigit() for c in text)
    return len(text) >= 24 and mixed


def _shown(value: Any) -> str:
    """A value for an error message: as it is, or withheld when it (or a text inside it) looks like a secret."""
    return "a value that looks like a secret (not shown)" if _holds_secret(value) else repr(value)


def _holds_secret(value: Any) -> bool:
    if isinstance(value, str):
        return looks_like_secret(value)
    if isinstance(value, Mapping):
        return any(_holds_secret(k) or _holds_secret(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_secret(v) for v in value)
    return False


def _env_name(value: str | None, key: str) -> str | None:
    """Validate a ``*_env`` key: the name of an environment variable, never the secret itself (never echoed)."""
    if value is None:
        return None
    if looks_like_secret(value):
        raise ValueError(f"{key} looks like a secret, not the name of an environment variable (value not shown) — "
                         "put the secret in an environment variable, e.g. `export HUBSPOT_TOKEN=...`, and set "
                         f"{key} = \"HUBSPOT_TOKEN\"; revoke the pasted credential if the file was shared")
    if not _ENV_NAME.match(value):
        raise ValueError(f"{key} must be the name of an environment variable (letters, digits and _, not starting "
                         "with a digit), e.g. \"HUBSPOT_TOKEN\" (value not shown)")
    return value


def _base_url(value: str) -> str:
    """Validate an API base URL: parsed, with a scheme and host, no credentials, https unless on this machine.

    The token is sent to this URL, so a plain-http remote host would expose it; loopback is allowed because the
    sandbox CRMs serve http on 127.0.0.1 (connectors/sandbox/server.py).
    """
    example = "write it as https://api.hubapi.com"
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 — raises ValueError on a port that is not a number in 0-65535
    except ValueError:
        raise ValueError(f"base_url is not a URL — {example}") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError("base_url carries a user name or password (not shown) — remove it: credentials only come "
                         "from the environment variables named by the *_env keys")
    if parts.scheme not in ("http", "https") or not parts.hostname or value != value.strip() or " " in value:
        raise ValueError(f"base_url {value!r} is not an http(s) URL with a host — {example}")
    if parts.query or parts.fragment:
        raise ValueError(f"base_url {value!r} has a query or fragment — give only scheme, host and path; {example}")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError(f"base_url {value!r} is plain http to another machine, which would send the token "
                         "unencrypted — use https")
    return value


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def duration_days(text: str) -> float:
    """Parse a duration such as ``30d``, ``12w``, ``6m``, ``1y`` or ``48h`` into days."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a duration — write a number and a unit: 48h, 30d, 12w, 6m, 1y")
    return float(match.group(1)) * _DURATION_DAYS[match.group(2)]


class _Strict(BaseModel):
    # No key takes infinity or NaN (TOML has both): every number feeds a model, a limit or a comparison.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
        if not math.isfinite(value):
            raise ValueError(f"'{op}' on a number field needs a finite number, got {value!r}")
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

    @field_validator("token_env", "client_id_env", "client_secret_env", "refresh_token_env")
    @classmethod
    def _env_names(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _env_name(value, str(info.field_name))

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _base_url(value)


SalesforceObject = Literal["Contact", "Lead"]


class SalesforceConfig(_Strict):
    """Connection to Salesforce via simple-salesforce; every secret from an env var.

    ``auth``: ``client_credentials`` (a connected/external client app with a run-as user; token requests go to
    the My Domain in ``instance_url_env``) or ``refresh_token`` for unattended runs; ``jwt`` (bearer flow,
    ``domain`` = the audience: ``login`` or ``test``); ``token`` (a session id, which cannot be renewed);
    ``password`` (SOAP ``login()``: off by default in orgs created from Winter '26 and retired in Summer '27).
    """

    auth: Literal["token", "password", "jwt", "client_credentials", "refresh_token"] = "token"
    instance_url_env: str = "SF_INSTANCE_URL"
    access_token_env: str | None = "SF_ACCESS_TOKEN"
    username_env: str | None = None
    password_env: str | None = None
    security_token_env: str | None = None
    consumer_key_env: str | None = None
    consumer_secret_env: str | None = None
    refresh_token_env: str | None = None
    private_key_file_env: str | None = None
    domain: str = "login"
    # REST API versions are numbered "NN.0" (GET /services/data lists them:
    # developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_versions.htm); 66.0 is Spring '26,
    # in every org since February 2026 (68.0, Winter '27, is the newest in December 2026).
    api_version: str = Field("66.0", pattern=r"^[1-9][0-9]\.0$")
    objects: list[SalesforceObject] = Field(default_factory=lambda: list[SalesforceObject](["Contact"]))
    bulk_threshold: int = Field(10_000, ge=0)
    page_size: int = Field(2000, ge=200, le=2000)
    batch_size: int = Field(200, ge=1, le=200)
    api_reserve_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    permission_set: str = "CLM_Integration"
    field_suffix: str = "__c"
    field_prefix: str = "CLM_"
    # Each incremental window re-reads this far below its cursor: a save is stamped when it runs and readable when
    # its transaction commits, up to 10 minutes later (the synchronous Apex transaction limit). Singer's
    # tap-salesforce defaults to 10 s (singer-io/tap-salesforce#135), too short for long triggers and flows.
    lookback_seconds: int = Field(600, ge=0, le=86_400)
    # A full Id sweep (deletions the 15-day Recycle Bin no longer shows) runs at least this often; it also runs
    # whenever the delete log no longer covers the cursor. 0: only then.
    reconcile_days: float = Field(7.0, ge=0.0, le=365.0)

    @field_validator("instance_url_env", "access_token_env", "username_env", "password_env", "security_token_env",
                     "consumer_key_env", "consumer_secret_env", "refresh_token_env", "private_key_file_env")
    @classmethod
    def _env_names(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _env_name(value, str(info.field_name))

    @model_validator(mode="after")
    def _auth_complete(self) -> SalesforceConfig:
        needed = {
            "token": ("access_token_env",),
            "password": ("username_env", "password_env"),
            "jwt": ("username_env", "consumer_key_env", "private_key_file_env"),
            "client_credentials": ("consumer_key_env", "consumer_secret_env"),
            "refresh_token": ("consumer_key_env", "refresh_token_env"),
        }[self.auth]
        missing = [key for key in needed if getattr(self, key) is None]
        if missing:
            raise ValueError(f"auth = '{self.auth}' needs {', '.join(missing)} (names of environment variables)")
        if self.auth == "jwt" and self.domain not in ("login", "test"):
            # The JWT audience must be the login server, never the My Domain (Salesforce answers "audience is
            # invalid"): help.salesforce.com articleView?id=xcloud.remoteaccess_oauth_jwt_flow.htm.
            raise ValueError(f"auth = 'jwt' needs domain = 'login' (production) or 'test' (sandbox), not "
                             f"'{self.domain}': it is the JWT audience, and Salesforce refuses a My Domain "
                             "audience with 'audience is invalid'")
        return self


class EngageBayConfig(_Strict):
    """Connection to EngageBay's REST API (github.com/engagebay/restapi): the REST API key from an env var.

    EngageBay publishes no rate limit, only that it answers 429 when "too many requests" are sent; the pace is
    ours to choose. DATE custom fields hold text in the API user's date format and time zone (Preferences ->
    Dateformat), so both are configured here and must match the account.
    """

    api_key_env: str = "ENGAGEBAY_API_KEY"
    base_url: str = "https://app.engagebay.com"
    requests_per_minute: int = Field(300, ge=1, le=100_000)
    max_concurrency: int = Field(4, ge=1, le=32)
    page_size: int = Field(100, ge=1, le=100)
    # Contacts per checkpoint: each is one update-partial call (EngageBay has no batch update).
    batch_size: int = Field(20, ge=1, le=1000)
    field_prefix: str = Field("clm_", pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    # Seconds of updated_time/created_time re-read below the stored watermark: timestamps are whole seconds, so
    # several records share one, and an edit saved while the previous run read sits at or just below its top.
    lookback_seconds: int = Field(300, ge=0, le=86_400)
    # A full id sweep (hard deletes leave no trace in the API) runs at least this often; 0: every run.
    sweep_hours: float = Field(24.0, ge=0.0, le=8_760.0)
    # Pause for every thread after a 429 (EngageBay documents no Retry-After).
    throttle_pause_seconds: float = Field(5.0, ge=0.0, le=600.0)
    date_format: Literal["DD/MM/YYYY", "MM/DD/YYYY", "YYYY-MM-DD", "YYYY/MM/DD"] = "DD/MM/YYYY"
    timezone: str = "UTC"
    # Deal milestones that mean won or lost when the track does not flag them (isWon/isLost).
    won_milestones: list[str] = Field(default_factory=lambda: ["Won", "Closed Won"])
    lost_milestones: list[str] = Field(default_factory=lambda: ["Lost", "Closed Lost"])

    @field_validator("api_key_env")
    @classmethod
    def _env_names(cls, value: str, info: ValidationInfo) -> str | None:
        return _env_name(value, str(info.field_name))

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _base_url(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone '{value[:40]}' is not an IANA time zone name, e.g. \"Europe/Berlin\"") from None
        return value


class FileContactColumns(_Strict):
    """Which column of a contacts export holds each value the engine reads."""

    id: str = "id"
    email: str | None = "email"
    created: str = "created_at"
    updated: str | None = None


class FileDealColumns(_Strict):
    """Which column of a deals export holds each value; ``contact_ids`` may list several ids with a separator."""

    id: str = "id"
    contact_ids: str = "contact_id"
    contact_separator: str = Field(";", min_length=1, max_length=1)
    amount: str | None = "amount"
    currency: str | None = None
    status: str = "status"
    created: str | None = "created_at"
    closed: str | None = "close_date"
    updated: str | None = None


class FilesConfig(_Strict):
    """Exports of any CRM as files (``crm.kind = "files"``): where they are, which columns mean what, where the
    enrichment goes. Paths are relative to the configuration file's folder; a folder is read file by file.

    ``contacts`` may be left out for a transaction log: contacts are then the deals' contacts, created on their
    first deal. Column names of the properties the engine reads are ``contact_properties``/``deal_properties``
    (property -> column; a property not listed is read from the column of its own name).
    """

    contacts: Path | None = None
    deals: Path | None = None
    format: Literal["auto", "csv", "jsonl", "parquet"] = "auto"
    delimiter: str = Field(",", min_length=1, max_length=1)
    # strptime format for dates that are not ISO 8601 or epoch milliseconds (e.g. "%Y%m%d", "%d/%m/%Y").
    date_format: str | None = None
    contact_columns: FileContactColumns = Field(default_factory=FileContactColumns)
    deal_columns: FileDealColumns = Field(default_factory=FileDealColumns)
    contact_properties: dict[str, str] = Field(default_factory=dict)
    deal_properties: dict[str, str] = Field(default_factory=dict)
    won_values: list[str] = Field(default_factory=lambda: ["won", "closedwon", "closed won", "true"])
    lost_values: list[str] = Field(default_factory=lambda: ["lost", "closedlost", "closed lost", "false"])
    output: Path = Path("clm-enrichment.csv")
    # Column names and value formats of the output: our own names, or the shape of HubSpot's or Salesforce's
    # import tools (see connectors/files/output.py).
    output_format: Literal["csv", "hubspot", "salesforce"] = "csv"
    batch_size: int = Field(100_000, ge=1, le=10_000_000)

    @model_validator(mode="after")
    def _has_input(self) -> FilesConfig:
        if self.contacts is None and self.deals is None:
            raise ValueError("[files] needs contacts or deals (a file or a folder of exports), e.g. "
                             "deals = \"exports/deals.csv\"")
        if self.output.suffix.lower() == ".parquet" and self.output_format != "csv":
            raise ValueError(f"files.output {self.output} is Parquet, but HubSpot's and Salesforce's import tools "
                             f"take CSV: name a .csv output for output_format = \"{self.output_format}\"")
        return self


class CrmConfig(_Strict):
    """Which CRM this configuration syncs with."""

    kind: Literal["hubspot", "salesforce", "engagebay", "files"] = "hubspot"


# --- data and computation ------------------------------------------------------------------------------


class DataConfig(_Strict):
    """Which CRM properties the engine reads, with their types, and how deals are tied to contacts."""

    contact_properties: dict[str, FieldType] = Field(default_factory=dict)
    deal_properties: dict[str, FieldType] = Field(default_factory=dict)
    attribution: Literal["primary", "all"] = "primary"


class ClvConfig(_Strict):
    """Customer lifetime value: model, time unit, horizon, discounting and margin."""

    # "auto" picks BG/NBD, MBG/NBD or Pareto/NBD by holdout error (core.clv.selection, see core.lifetime).
    model: Literal["bgnbd", "mbgnbd", "pareto_nbd", "auto", "historical"] = "bgnbd"
    time_unit: Literal["days", "weeks"] = "weeks"
    horizon: float = Field(52.0, gt=0, description="in time units")
    annual_discount_rate: float = Field(0.10, ge=0.0, lt=1.0)
    margin: float = Field(1.0, gt=0.0, le=1.0)
    min_repeat_customers: int = Field(20, ge=1)
    # Per-contact CLV bounds (clv_low/clv_high) from a parameter draw; also on when sync.write_fields lists them.
    intervals: bool = False

    @field_validator("horizon")
    @classmethod
    def _horizon_in_range(cls, horizon: float, info: ValidationInfo) -> float:
        unit = info.data.get("time_unit", "weeks")  # declared before horizon, so already validated
        if horizon * (7.0 if unit == "weeks" else 1.0) > _MAX_HORIZON_DAYS:
            raise ValueError(f"horizon = {horizon:g} {unit} is more than a century — the horizon is in "
                             f"clv.time_unit ({unit}); 52 weeks or 365 days is one year")
        return horizon


_ISO_CODE = re.compile(r"^[A-Z]{3}$")


class CurrencyConfig(_Strict):
    """The one currency every deal amount is counted in, and exchange rates for when the CRM gives none.

    ``base`` is an ISO 4217 code; unset, it is the CRM's own company (corporate) currency. ``rates`` give the
    value of one unit of each currency in ``base`` (``JPY = 0.0067``: 1 JPY = 0.0067 USD). The CRM's own rates
    come first (Salesforce ``CurrencyType``/``DatedConversionRate``, HubSpot's amount in company currency); a
    deal in a currency with no rate from either is reported and left out, never summed unconverted.
    """

    base: str | None = None
    rates: dict[str, float] = Field(default_factory=dict)

    @field_validator("base")
    @classmethod
    def _code(cls, value: str | None) -> str | None:
        if value is not None and not _ISO_CODE.match(value):
            raise ValueError(f"'{value}' is not an ISO 4217 currency code — write three capital letters, e.g. USD")
        return value

    @field_validator("rates")
    @classmethod
    def _rates(cls, rates: dict[str, float]) -> dict[str, float]:
        for code, rate in rates.items():
            if not _ISO_CODE.match(code):
                raise ValueError(f"'{code}' is not an ISO 4217 currency code — write three capital letters, "
                                 "e.g. JPY = 0.0067")
            if not rate > 0:
                raise ValueError(f"rate of {code} must be above 0 (the value of one {code} in the base currency)")
        return rates

    @model_validator(mode="after")
    def _based(self) -> CurrencyConfig:
        if self.rates and self.base is None:
            raise ValueError("currency.rates need currency.base: the rates say what one unit is worth in it, "
                             "e.g. base = \"USD\"")
        if self.base is not None and self.rates.get(self.base, 1.0) != 1.0:
            raise ValueError(f"currency.rates.{self.base} must be 1 (it is the base currency) or left out")
        return self


class ScoringRule(Criteria):
    """Points for contacts that match; ``per`` multiplies by a numeric field (e.g. per email click) and
    ``cap`` bounds the rule's points. Engagement rules may decay with a half-life on a date field."""

    name: str
    kind: Literal["fit", "engagement"]
    points: float
    per: str | None = None
    cap: float | None = Field(None, gt=0)
    decay_half_life_days: float | None = Field(None, gt=0, le=_MAX_HORIZON_DAYS)
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
    # score_reasons (written when sync.write_fields lists it): the rules with the most points, at most this many,
    # in at most this many characters (255: a Salesforce Text field's limit, well within HubSpot's 65,536).
    reasons_top: int = Field(3, ge=1, le=20)
    reasons_max_length: int = Field(255, ge=20, le=255)

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
    horizon_days: float = Field(180, gt=0, le=_MAX_HORIZON_DAYS,
                                description="label: became a customer within this after the cut-off")
    min_auc: float = Field(0.65, ge=0.5, le=1.0)
    min_positives: int = Field(50, ge=1)
    min_contacts: int = Field(500, ge=10)
    holdout_fraction: float = Field(0.25, gt=0.0, lt=0.9)
    seed: int = 0
    # predictive_reasons (written when sync.write_fields lists it): the features that move the odds most.
    reasons_top: int = Field(3, ge=1, le=20)
    reasons_max_length: int = Field(255, ge=20, le=255)


class StageConfig(Criteria):
    """One lifecycle stage. ``progress`` stages are ordered (the highest matching wins); ``decline``
    stages override progress stages when they match (at_risk, churned); ``reactivation`` overrides both."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["progress", "decline", "reactivation"] = "progress"
    action: str = "none"
    hubspot_lifecyclestage: str | None = None

    @field_validator("hubspot_lifecyclestage")
    @classmethod
    def _native_stage(cls, value: str | None) -> str | None:
        # Only HubSpot's default stages have a known order, and HubSpot moves the stage forward only
        # (knowledge.hubspot.com/records/use-lifecycle-stages): a value outside that order is never written
        # (core.stages.is_forward_move), so accepting it would silently do nothing. Imported here: core.stages
        # imports this module.
        from core.stages import HUBSPOT_LIFECYCLE_ORDER

        if value is not None and value not in HUBSPOT_LIFECYCLE_ORDER:
            close = difflib.get_close_matches(value.lower().replace(" ", ""), HUBSPOT_LIFECYCLE_ORDER, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ValueError(f"'{value}' is not a HubSpot lifecycle stage — {hint}use one of HubSpot's internal "
                             f"values: {', '.join(HUBSPOT_LIFECYCLE_ORDER)} (or remove the key)")
        return value


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
    # A shared PostgreSQL database instead of the file, for fleets of jobs (sync.state_postgres); the password
    # comes from the variable named by state_password_env, never from this file.
    state_url: str | None = None
    state_password_env: str | None = "CLM_STATE_PASSWORD"
    on_conflict: Literal["overwrite", "skip", "report"] = "report"
    # Above one half, a real change (a CLV halving) would go unwritten: a larger value is a typo, not a policy.
    numeric_tolerance: float = Field(0.005, ge=0.0, le=0.5,
                                     description="relative change below which no write is made")
    write_fields: list[str] | None = None

    @field_validator("state_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value.strip())
        except ValueError:
            raise ValueError("state_url is not a URL — give e.g. \"postgresql://clm@db.internal/clm\"") from None
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("state_url must be a PostgreSQL URL, e.g. \"postgresql://clm@db.internal/clm\" (for "
                             "the SQLite file, remove state_url and set state_path)")
        if ":" in parts.netloc.rpartition("@")[0] or "password=" in parts.query.lower():
            raise ValueError("state_url holds a password (value not shown) — remove it and put the password in the "
                             "environment variable named by state_password_env (default CLM_STATE_PASSWORD); "
                             "change the password if the file was shared")
        return value.strip()

    @field_validator("state_password_env")
    @classmethod
    def _password_env_name(cls, value: str | None) -> str | None:
        return _env_name(value, "state_password_env")

    @field_validator("write_fields")
    @classmethod
    def _our_fields(cls, names: list[str] | None) -> list[str] | None:
        if names is None:
            return None
        if not names:
            # The runner reads an empty list as "no filter" (sync.runner.output_specs): say so, do not guess.
            raise ValueError("write_fields = [] would write every field — remove the key to write all of them, or "
                             "list the ones to write")
        ours = [spec.name for spec in (*OUTPUT_FIELDS, *OPTIONAL_OUTPUT_FIELDS)]
        for name in names:
            if name not in ours:
                close = difflib.get_close_matches(name, ours, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise ValueError(f"'{name}' is not one of our fields — {hint}write_fields takes: {', '.join(ours)}")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"write_fields lists {', '.join(repeated)} more than once")
        return names


# --- alerts --------------------------------------------------------------------------------------------

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
RunStatus = Literal["failed", "partial", "interrupted"]
_ALERT_STATUSES: tuple[RunStatus, ...] = ("failed", "partial", "interrupted")


class MetricBound(_Strict):
    """``[[alerts.metric]]``: alert when a snapshot metric moves beyond a bound between two runs, e.g.
    ``name = "churn_rate"``, ``max_change = 0.05`` (rates are fractions: 0.05 is 5 points)."""

    name: str
    max_change: float | None = Field(None, ge=0)
    max_relative_change: float | None = Field(None, ge=0)
    direction: Literal["up", "down", "any"] = "any"

    @field_validator("name")
    @classmethod
    def _known_metric(cls, name: str) -> str:
        from core.alert_rules import METRIC_ALIASES, METRIC_SECTIONS

        if name in METRIC_ALIASES or ("." in name and name.split(".")[0] in METRIC_SECTIONS):
            return name
        close = difflib.get_close_matches(name, list(METRIC_ALIASES), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ValueError(f"'{name}' is not a metric of the run snapshot — {hint}use one of "
                         f"{', '.join(METRIC_ALIASES)}, or a dotted key such as stage_counts.customer")

    @model_validator(mode="after")
    def _one_bound(self) -> MetricBound:
        if (self.max_change is None) == (self.max_relative_change is None):
            raise ValueError("give exactly one of max_change (in the metric's unit; rates as fractions) or "
                             "max_relative_change (a fraction of the previous value)")
        return self


class SmtpConfig(_Strict):
    """``[alerts.smtp]``: e-mail through an SMTP server; the password from an environment variable.

    ``security``: ``starttls`` (port 587, RFC 3207), ``ssl`` (implicit TLS, port 465, RFC 8314) or ``none``, which
    is allowed only to a server on this machine (a relay on localhost), since it would send the password and the
    alert in clear text.
    """

    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    from_address: str
    to: list[str] = Field(min_length=1)

    @field_validator("password_env")
    @classmethod
    def _env_names(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _env_name(value, str(info.field_name))

    @field_validator("from_address")
    @classmethod
    def _sender(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError("from_address is not an e-mail address, e.g. \"clm@yourcompany.com\"")
        return value

    @field_validator("to")
    @classmethod
    def _recipients(cls, values: list[str]) -> list[str]:
        for i, value in enumerate(values):
            if not _EMAIL.match(value):
                raise ValueError(f"to[{i}] is not an e-mail address, e.g. \"revops@yourcompany.com\"")
        return values

    @model_validator(mode="after")
    def _safe(self) -> SmtpConfig:
        if self.security == "none" and not _loopback(self.host):
            raise ValueError(f"security = \"none\" to {self.host} would send the alert (and any password) "
                             "unencrypted — use \"starttls\" (port 587) or \"ssl\" (port 465)")
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together: give both to log in, or neither")
        return self


class AlertsConfig(_Strict):
    """``[alerts]``: notify people when an unattended run needs them (rules in :mod:`core.alert_rules`).

    Channels name environment variables, never the secrets: ``slack_webhook_url_env`` (a Slack incoming webhook
    URL, itself a secret), ``webhook_url_env`` (any URL that takes a JSON POST) and ``[alerts.smtp]``. Sending is
    best effort: a channel that fails is logged and recorded with the run, and never fails the sync.
    """

    slack_webhook_url_env: str | None = None
    webhook_url_env: str | None = None
    smtp: SmtpConfig | None = None
    on_status: list[RunStatus] = Field(default_factory=lambda: list(_ALERT_STATUSES))
    max_rejection_rate: float | None = Field(None, ge=0, le=1)
    max_unwritten_fields: int | None = Field(None, ge=0)
    metric: list[MetricBound] = Field(default_factory=list)
    timeout_seconds: float = Field(5.0, gt=0, le=60)

    @field_validator("slack_webhook_url_env", "webhook_url_env")
    @classmethod
    def _env_names(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _env_name(value, str(info.field_name))

    def channels(self) -> list[str]:
        """The configured channels: ``slack``, ``webhook``, ``smtp``."""
        return [name for name, on in (("slack", self.slack_webhook_url_env), ("webhook", self.webhook_url_env),
                                      ("smtp", self.smtp)) if on]


def _default_stages() -> list[StageConfig]:
    from core.defaults import default_stages

    return default_stages()


class ClmConfig(_Strict):
    """The whole configuration."""

    crm: CrmConfig = Field(default_factory=CrmConfig)
    hubspot: HubSpotConfig = Field(default_factory=HubSpotConfig)
    salesforce: SalesforceConfig | None = None
    engagebay: EngageBayConfig | None = None
    files: FilesConfig | None = None
    data: DataConfig = Field(default_factory=DataConfig)
    clv: ClvConfig = Field(default_factory=ClvConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    predictive: PredictiveConfig = Field(default_factory=PredictiveConfig)
    stages: list[StageConfig] = Field(default_factory=_default_stages, min_length=1)
    actions: list[ActionRule] = Field(default_factory=list)
    meddic: MeddicConfig = Field(default_factory=MeddicConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    currency: CurrencyConfig = Field(default_factory=CurrencyConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)

    @model_validator(mode="after")
    def _consistent(self) -> ClmConfig:
        if self.crm.kind == "salesforce" and self.salesforce is None:
            raise ValueError("crm.kind = 'salesforce' needs a [salesforce] section")
        if self.crm.kind == "engagebay" and self.engagebay is None:
            raise ValueError("crm.kind = 'engagebay' needs an [engagebay] section (`clm init --crm engagebay` "
                             "writes one)")
        if self.crm.kind == "files" and self.files is None:
            raise ValueError("crm.kind = 'files' needs a [files] section naming the exports, e.g. "
                             "deals = \"exports/deals.csv\"")
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
    """Read and validate ``clm.toml``; raise :class:`ConfigError` with every problem found.

    The state file is checked too, relative to the file's folder as the commands resolve it
    (:func:`state_path_for`): a folder or a path under a file cannot be opened, whatever the store does.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("", f"{path} does not exist — run `clm init` to write one")]) from None
    except IsADirectoryError:
        raise ConfigError([ConfigProblem("", f"{path} is a folder, not a configuration file — pass the clm.toml "
                                             f"inside it, e.g. --config {path}/clm.toml")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem("", f"not UTF-8 text (byte {exc.start}) — TOML files are UTF-8; save the "
                                             "file as UTF-8")], str(path)) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem("", f"cannot read {path}: {exc.strerror or exc} — check that the file "
                                             "exists and you may read it")]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem("", f"not valid TOML: {exc}")], str(path)) from None
    config = parse_config(raw, str(path))
    problem = _state_path_problem(state_path_for(config, path))
    if problem is not None:
        raise ConfigError([problem], str(path))
    return config


def state_path_for(config: ClmConfig, config_path: Path) -> Path:
    """Where the state file of ``config`` (read from ``config_path``) is: a relative path is taken from the
    configuration file's folder, so a run from cron finds the same state as one from a shell."""
    state_path = config.sync.state_path
    return state_path if state_path.is_absolute() else config_path.resolve().parent / state_path


def _state_path_problem(path: Path) -> ConfigProblem | None:
    """A state path that can never be opened: a folder, or a path below something that is not a folder."""
    if path.is_dir():
        return ConfigProblem("sync.state_path", f"{path} is a folder, not a state file — name a file, e.g. "
                                                f"state_path = \"{path / 'state.db'}\"")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return ConfigProblem("sync.state_path", f"{parent} is a file, so {path} cannot be created below "
                                                        "it — choose another state_path")
            break
    return None


class MissingSecret(AuthError):
    """A secret's environment variable is not set: a usage error (exit 2, like a configuration problem), not a
    credential the CRM refused (exit 1). Still an :class:`AuthError` for the code that handles those."""

    exit_code = 2


def secret(env_name: str | None, key_path: str) -> str:
    """Read a secret from the environment variable the configuration names at ``key_path``."""
    if not env_name:
        raise MissingSecret(f"{key_path} is not set", hint=f"set {key_path} to the name of an environment variable")
    try:
        _env_name(env_name, key_path)  # a name that slipped past the configuration is refused, never echoed
    except ValueError as exc:
        raise ConfigError([ConfigProblem(key_path, str(exc))]) from None
    value = os.environ.get(env_name, "").strip()
    if not value:
        raise MissingSecret(
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
    seen: dict[str, int] = {}
    for i, name in enumerate(s.name for s in config.stages):
        if name in seen:
            problems.append(ConfigProblem(f"stages[{i}].name", f"stage '{name}' is already the name of "
                                                               f"stages[{seen[name]}] — stage names must be unique"))
        seen.setdefault(name, i)
    problems.extend(_stage_model_problems(config.stages))
    domains = {**_TEXT_DOMAINS, "previous_stage": frozenset(stage_names)}
    rules: list[tuple[str, str, Criteria]] = [(f"stages[{i}]", f"stage '{s.name}' would never be assigned", s)
                                              for i, s in enumerate(config.stages)]
    rules += [(f"actions[{i}]", f"action rule '{a.action}' would never apply", a) for i, a in enumerate(config.actions)]
    rules += [(f"scoring.rules[{i}]", f"scoring rule '{r.name}' would never give points", r)
              for i, r in enumerate(config.scoring.rules)]
    kinds = {**STAGE_FIELDS, **config.data.contact_properties}
    for path, effect, criteria in rules:
        problems.extend(_never_matching(path, effect, criteria, kinds, domains))
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


def _stage_model_problems(stages: Sequence[StageConfig]) -> list[ConfigProblem]:
    """Stage models that cannot work (core.stages.assign_stages: the last matching progress stage wins, decline
    and reactivation stages override it, a contact matching nothing gets the first progress stage)."""
    progress = [i for i, s in enumerate(stages) if s.kind == "progress"]
    if not progress:
        return [ConfigProblem("stages", f"the stage model has no progress stage, so a contact that matches none "
                                        f"would be given '{stages[0].name}' (a {stages[0].kind} stage) — add a "
                                        "progress stage first, e.g. { name = \"subscriber\" } with no criteria")]
    problems: list[ConfigProblem] = []
    for i, stage in enumerate(stages):
        if stage.criteria or stage.any_of:
            continue
        if stage.kind != "progress":
            problems.append(ConfigProblem(f"stages[{i}].criteria", f"{stage.kind} stage '{stage.name}' has no "
                                                                   "criteria, so it matches every contact and "
                                                                   "overrides every progress stage — give it criteria"))
        elif i != progress[0]:
            hidden = ", ".join(f"'{stages[j].name}'" for j in progress if j < i)
            problems.append(ConfigProblem(f"stages[{i}].criteria", f"progress stage '{stage.name}' has no criteria, "
                                                                   f"so it matches every contact and {hidden} before "
                                                                   "it can never be assigned — give it criteria or "
                                                                   "move it first"))
    return problems


#: Natural ranges of the computed numbers (low, high, whole numbers only), for "can never match" checks: counts
#: are whole and not negative, probabilities lie in [0, 1], scores and percentiles in [0, 100] (core.fields).
_RANGES: dict[str, tuple[float, float, bool]] = {
    **{name: (0.0, math.inf, True) for name in ("open_deals", "won_deals", "lost_deals", "frequency",
                                                "purchases_in_stage")},
    **{name: (0.0, math.inf, False) for name in ("recency", "age", "expected_purchases", "usual_gap_days",
                                                 "recency_ratio", "days_in_stage")},
    **{name: (0.0, 1.0, False) for name in ("p_alive", "conversion_probability")},
    **{name: (0.0, 100.0, False) for name in ("lead_score", "fit_score", "engagement_score", "clv_percentile")},
}
#: Computed text values with a known set of values (``previous_stage``'s is the stage names).
_TEXT_DOMAINS: dict[str, frozenset[str]] = {"grade": frozenset({"a", "b", "c", "d"})}
#: Operators an unknown value fails (core.criteria: only neq, not_in and is_unknown match unknowns).
_NEEDS_KNOWN = frozenset(OPERATORS) - {"neq", "not_in", "is_unknown"}


def _never_matching(path: str, effect: str, rule: Criteria, kinds: Mapping[str, FieldType],
                    domains: Mapping[str, frozenset[str]]) -> list[ConfigProblem]:
    """Condition groups of ``rule`` that no contact can satisfy, each reported with its conditions."""
    base = _impossible(rule.criteria, kinds, domains)
    if base is not None:
        return [ConfigProblem(f"{path}.criteria", f"can never match: {base} — {effect}")]
    reasons = [(g, _impossible([*rule.criteria, *group], kinds, domains)) for g, group in enumerate(rule.any_of)]
    dead = [(g, reason) for g, reason in reasons if reason is not None]
    outcome = effect if dead and len(dead) == len(rule.any_of) else "this group is dead (fix or remove it)"
    return [ConfigProblem(f"{path}.any_of[{g}]", f"can never match: {reason} — {outcome}") for g, reason in dead]


def _rule_text(conditions: Sequence[Condition]) -> str:
    return " and ".join(f"{c.field} {c.op}" + ("" if c.value is None else f" {c.value!r}") for c in conditions)


def _impossible(conditions: Sequence[Condition], kinds: Mapping[str, FieldType],
                domains: Mapping[str, frozenset[str]]) -> str | None:
    """Why these AND'ed conditions can never all hold, or None when some value satisfies them (or we cannot
    tell: relative dates mixed with absolute ones are not analysed)."""
    by_field: dict[str, list[Condition]] = {}
    for condition in conditions:
        by_field.setdefault(condition.field, []).append(condition)
    for name, group in by_field.items():
        ops = {c.op for c in group}
        kind = kinds.get(name)
        empty = False
        if "is_unknown" in ops and ops & _NEEDS_KNOWN:
            empty = True
        elif kind in (FieldType.STRING, FieldType.ENUM):
            empty = _text_empty(group, domains.get(name))
        elif kind is FieldType.BOOL:
            wanted = {c.value for c in group if c.op == "eq"}
            empty = len(wanted) > 1 or bool(wanted & {c.value for c in group if c.op == "neq"})
        elif kind in (FieldType.NUMBER, FieldType.DATETIME):
            empty = _number_empty(group, _RANGES.get(name, (-math.inf, math.inf, False)))
        if empty:
            return f"no value of {name} satisfies {_rule_text(group)}"
    return None


def _text_empty(group: Sequence[Condition], domain: frozenset[str] | None) -> bool:
    """Text values compare case-insensitively and trimmed; an empty text is unknown (core.criteria)."""
    allowed: set[str] | None = set(domain) if domain is not None else None
    excluded: set[str] = set()
    for c in group:
        values = c.value if isinstance(c.value, list) else [c.value]
        texts = {str(v).strip().casefold() for v in values if isinstance(v, str)}
        if len(texts) != len(values):
            continue  # numbers in a text condition: read as the CRM shows them, not analysed
        if c.op in ("eq", "in"):
            texts.discard("")
            allowed = texts if allowed is None else allowed & texts
        elif c.op in ("neq", "not_in"):
            excluded |= texts
        elif c.op == "contains" and allowed is not None:
            needle = next(iter(texts))
            allowed = {t for t in allowed if needle in t}
    return allowed is not None and not (allowed - excluded)


def _number_empty(group: Sequence[Condition], natural: tuple[float, float, bool]) -> bool:
    """Whether the intersection of the group's absolute bounds, inside the field's natural range, is empty."""
    low, high, whole = natural
    low_open = high_open = False
    points: set[float] | None = None
    excluded: set[float] = set()
    for c in group:
        if c.op in ("within_last", "not_within_last", "within_next"):
            return _relative_empty(group)
        values = [_as_number(v) for v in (c.value if isinstance(c.value, list) else [c.value])]
        if c.op in ("eq", "in"):
            points = set(values) if points is None else points & set(values)
        elif c.op in ("neq", "not_in"):
            excluded |= set(values)
        elif c.op == "between":
            low, low_open = max((low, low_open), (values[0], False))
            high, high_open = min((high, high_open), (values[1], False), key=lambda b: (b[0], not b[1]))
        elif c.op in ("gt", "gte"):
            low, low_open = max((low, low_open), (values[0], c.op == "gt"))
        elif c.op in ("lt", "lte"):
            high, high_open = min((high, high_open), (values[0], c.op == "lt"), key=lambda b: (b[0], not b[1]))

    def inside(x: float) -> bool:
        return ((x > low) if low_open else (x >= low)) and ((x < high) if high_open else (x <= high)) \
            and (not whole or x.is_integer()) and x not in excluded

    if points is not None:
        return not any(inside(x) for x in points)
    if whole:
        first = math.floor(low) + 1 if low_open or not float(low).is_integer() else low
        if math.isfinite(first):
            # The whole numbers in range, up to a few past the excluded ones (each excludes one).
            return not any(inside(float(first + k)) for k in range(len(excluded) + 1))
    if low > high or (low == high and (low_open or high_open)):
        return True
    return low == high and low in excluded


def _as_number(value: Any) -> float:
    """A validated condition value as a number: numbers as they are, ISO dates as epoch seconds (UTC if naive)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(str(value))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _relative_empty(group: Sequence[Condition]) -> bool:
    """Relative date conditions as offsets from as-of, in days: within_last d is [-d, 0], within_next d [0, d],
    not_within_last d is below -d. Mixed with absolute dates the answer depends on as-of: not analysed."""
    low, high, high_open = -math.inf, math.inf, False
    for c in group:
        if c.op not in ("within_last", "not_within_last", "within_next", "is_known"):
            return False
        if c.op == "is_known":
            continue
        days = duration_days(str(c.value))
        if c.op == "within_last":
            low, high = max(low, -days), min(high, 0.0)
        elif c.op == "within_next":
            low, high = max(low, 0.0), min(high, days)
        elif -days <= high:
            high, high_open = -days, True
    return low > high or (low == high and high_open)


def _problems(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        # A key that looks like a pasted credential is not repeated in its own path.
        loc = tuple("(a key that looks like a secret)" if isinstance(part, str) and looks_like_secret(part) else part
                    for part in (*prefix, *error["loc"]))
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
        if name in _REMOVED_KEYS:
            return f"unknown key '{name}' — {_REMOVED_KEYS[name]}"
        allowed = _fields_at(loc[:-1])
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(allowed)}"
        return f"unknown key '{name}' — {hint}"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        return "required key is missing"
    # The input is repeated unless it looks like a secret or sits under a key that names one (``*_env``).
    shown = "a value that is not shown" if str(loc[-1]).endswith("_env") else _shown(error.get("input"))
    return f"{error['msg']} (got {shown})"


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
