"""HubSpot's official OpenAPI specs, loaded once per process: request validation for the emulator and response
validation for its tests.

The specs are HubSpot's published files (contacts-v3, deals-v3, properties-v3, associations-v4) in
``<repo>/../shared/specs/hubspot``, or in the directory named by ``CLM_HUBSPOT_SPECS``. They are read with
openapi-core, imported only when the specs are loaded. When the directory or openapi-core is missing, validation is
off: :attr:`Specs.enabled` is False and :attr:`Specs.reason` says why.

Where HubSpot knowingly accepts what its generated spec rejects, the spec is patched, each patch in
:func:`_documented_exceptions` with the doc that shows the behaviour; nothing else is relaxed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from connectors.sandbox.server import Request, Response

ENV_VAR = "CLM_HUBSPOT_SPECS"
SPEC_FILES = {"contacts": "contacts-v3.json", "deals": "deals-v3.json", "properties": "properties-v3.json",
              "associations": "associations-v4.json"}
_SPEC_HOST = "https://api.hubapi.com"
# The deals spec names the object type by its id (/crm/v3/objects/0-3/...); the contacts spec by its name.
_OBJECT_PATHS = (("/crm/v3/objects/contacts", "contacts", "/crm/v3/objects/contacts"),
                 ("/crm/v3/objects/0-1", "contacts", "/crm/v3/objects/contacts"),
                 ("/crm/v3/objects/deals", "deals", "/crm/v3/objects/0-3"),
                 ("/crm/v3/objects/0-3", "deals", "/crm/v3/objects/0-3"))


def default_root() -> Path:
    """Where the specs are: ``$CLM_HUBSPOT_SPECS``, else ``<repo>/../shared/specs/hubspot``."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3].parent / "shared" / "specs" / "hubspot"


@dataclass(frozen=True)
class Problem:
    """One reason a request does not match its operation: where (``inputs[0].properties.x``, ``query.limit``)
    and what."""

    location: str
    message: str
    missing: tuple[str, ...] = ()
    """The required fields that are absent, when that is the problem."""

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


def _documented_exceptions(name: str, spec: dict[str, Any]) -> None:
    """Patch, in place, the places where HubSpot's documented behaviour differs from its generated spec."""
    schemas = spec.get("components", {}).get("schemas", {})
    search = schemas.get("PublicObjectSearchRequest")
    if name in ("contacts", "deals") and isinstance(search, dict):
        # The spec marks after, filterGroups, limit, properties and sorts all required, but HubSpot's search guide
        # sends a request with only filterGroups and says "To make a basic search returning only default
        # properties with no additional filtering or sorting, include only an empty object in the request body"
        # (developers.hubspot.com/docs/api-reference/legacy/crm/search-the-crm). Each is optional there.
        search.pop("required", None)
        # The spec types sorts as strings; the same guide sorts with objects:
        # "sorts": [{"propertyName": "createdate", "direction": "DESCENDING"}]. Both forms are accepted, the
        # object one with exactly the guide's fields.
        search["properties"]["sorts"]["items"] = {"oneOf": [
            {"type": "string"},
            {"type": "object", "required": ["propertyName"], "additionalProperties": False,
             "properties": {"propertyName": {"type": "string"},
                            "direction": {"type": "string", "enum": ["ASCENDING", "DESCENDING"]}}},
        ]}
    if name in ("contacts", "deals"):
        # The spec requires associations on a create; the object guides create with properties alone: "In your
        # request, include your contact data in a properties object. You can also add an associations object"
        # (developers.hubspot.com/docs/api/crm/contacts, "Create contacts", example {"properties": {...}}).
        for create in ("SimplePublicObjectInputForCreate", "SimplePublicObjectBatchInputForCreate"):
            if isinstance(schemas.get(create), dict):
                schemas[create]["required"] = ["properties"]


def _load(root: Path, name: str, file: str) -> Any:
    from openapi_core import OpenAPI

    # Error bodies are declared with media type "*/*", which openapi-core cannot deserialize; HubSpot (and the
    # emulator) send them as application/json, so they are validated as that (responses only).
    spec = json.loads((root / file).read_text().replace('"*/*"', '"application/json"'))
    _documented_exceptions(name, spec)
    return OpenAPI.from_dict(spec)


@dataclass
class Specs:
    """The loaded specs (see :func:`load_specs`), or none with the reason."""

    root: Path
    apis: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    """Why validation is off (empty when it is on)."""
    _request_validators: dict[int, tuple[Any, ...]] = field(default_factory=dict, repr=False)

    @property
    def enabled(self) -> bool:
        """True when requests and responses are validated."""
        return bool(self.apis)

    def _validators(self, api: Any) -> tuple[Any, ...]:
        cached = self._request_validators.get(id(api))
        if cached is None:
            from openapi_core.validation.request.validators import (
                V30RequestBodyValidator,
                V30RequestParametersValidator,
            )

            # Security is not validated: tokens are the emulator's auth module's job (and openapi-core has no
            # oauth2 provider).
            cached = (V30RequestParametersValidator(api.spec), V30RequestBodyValidator(api.spec))
            self._request_validators[id(api)] = cached
        return cached

    def _operation(self, path: str) -> tuple[Any, str] | None:
        path = path.rstrip("/") or "/"
        for prefix, name, spec_prefix in _OBJECT_PATHS:
            if path == prefix or path.startswith(prefix + "/"):
                return self.apis[name], spec_prefix + path[len(prefix):]
        if path.startswith("/crm/v3/properties/"):
            return self.apis["properties"], path
        if path.startswith("/crm/v4/associations/"):
            return self.apis["associations"], path
        return None

    def request_problems(self, method: str, path: str, query: Mapping[str, Sequence[str]], body: bytes,
                         content_type: str | None) -> list[Problem]:
        """Why a request does not match its operation (path, query and body); empty when it does, or when the
        specs do not describe the path (the emulator answers those itself: 404/405, OAuth, account info)."""
        if not self.enabled:
            return []
        found = self._operation(path)
        if found is None:
            return []
        from openapi_core.templating.paths.exceptions import PathError
        from openapi_core.testing import MockRequest

        api, spec_path = found
        media = (content_type or "application/json").split(";")[0].strip() or "application/json"
        request = MockRequest(_SPEC_HOST, method.lower(), spec_path, args={k: list(v) for k, v in query.items()},
                              data=body or None, content_type=media)
        problems: list[Problem] = []
        for validator in self._validators(api):
            try:
                errors = list(validator.iter_errors(request))
            except PathError:
                return []  # an operation the spec does not have; the emulator's router answers it
            for error in errors:
                if isinstance(error, PathError):
                    return []
                problems.extend(_explain(error))
        return problems

    def response_problems(self, request: Request, response: Response) -> list[str]:
        """Why a response does not match its operation in the spec (empty when it does or has none)."""
        if not self.enabled:
            return []
        found = self._operation(request.path)
        if found is None:
            return []
        if response.status == 204 and not response.body:
            return []  # a 204 has no body to validate (openapi-core insists on data for "content": {})
        from openapi_core.testing import MockRequest, MockResponse

        api, spec_path = found
        content_type = response.headers.get("Content-Type", "application/json").lower()
        mock_request = MockRequest(_SPEC_HOST, request.method.lower(), spec_path,
                                   args={k: v[0] for k, v in request.query.items()}, data=request.body or None,
                                   headers={"Authorization": "Bearer x"})
        mock_response = MockResponse(response.body, status_code=response.status, headers=response.headers,
                                     content_type=content_type.split(";")[0] if response.body else "application/json")
        try:
            api.validate_response(mock_request, mock_response)
        except Exception as exc:  # the validator raises a tree of schema errors: keep them all
            causes = [str(exc)]
            cause = exc.__cause__
            while cause is not None:
                causes.append(str(cause)[:600])
                cause = cause.__cause__
            return [f"{request.method} {request.path} -> {response.status}: {' / '.join(causes)}"]
        return []


def _location(parts: Sequence[object]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _explain(error: Exception) -> list[Problem]:
    """Readable problems from openapi-core's exception tree (schema errors carry a path into the body)."""
    cause = error.__cause__
    schema_errors = getattr(cause, "schema_errors", None) or getattr(error, "schema_errors", None)
    name = getattr(error, "name", None)
    where = f"query.{name}" if isinstance(name, str) else "body"
    if not schema_errors:
        detail = f"{error}" + (f" ({cause})" if cause is not None else "")
        return [Problem(where, detail)]
    problems = []
    for item in schema_errors:
        location = _location(list(item.absolute_path)) if where == "body" else where
        if item.validator == "required":
            present = item.instance if isinstance(item.instance, Mapping) else {}
            missing = tuple(str(n) for n in item.validator_value if n not in present)
            problems.append(Problem(location, f"missing required {', '.join(missing)}", missing))
        else:
            problems.append(Problem(location, str(item.message)))
    return problems


@lru_cache(maxsize=4)
def _cached(root: Path) -> Specs:
    if not root.is_dir():
        return Specs(root, reason=f"no HubSpot specs at {root} (set {ENV_VAR})")
    missing = [file for file in SPEC_FILES.values() if not (root / file).is_file()]
    if missing:
        return Specs(root, reason=f"HubSpot specs missing in {root}: {', '.join(missing)}")
    try:
        import openapi_core  # noqa: F401
    except ImportError:
        return Specs(root, reason="openapi-core is not installed (pip install -e '.[test]')")
    return Specs(root, {name: _load(root, name, file) for name, file in SPEC_FILES.items()})


def load_specs(root: Path | None = None) -> Specs:
    """The specs in ``root`` (default: :func:`default_root`), parsed once per process (parsing takes ~0.5 s)."""
    return _cached((root or default_root()).resolve())
