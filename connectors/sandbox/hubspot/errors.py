"""HubSpot's error bodies, as the v3/v4 APIs send them.

Every error is ``{"status": "error", "message", "correlationId", "category", ...}`` (the spec's ``Error``
schema requires ``category``, ``correlationId`` and ``message``); batch endpoints report per-input failures
as ``StandardError`` items inside a 207 instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

#: The message HubSpot sends for a missing or unknown token, verbatim as many integrations log it
#: (e.g. github.com/HubSpot/hubspot-api-python issues; api.hubapi.com answers it for an invalid token).
INVALID_AUTH_MESSAGE = ("Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
                        "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview")


def correlation_id() -> str:
    """A fresh correlation id (HubSpot sends a UUID with every error)."""
    return str(uuid.uuid4())


class ApiError(Exception):
    """An error answered for the whole request."""

    def __init__(self, status: int, category: str, message: str, *,
                 context: Mapping[str, Sequence[str]] | None = None,
                 errors: Sequence[Mapping[str, Any]] | None = None,
                 sub_category: str | None = None, extra: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {category}: {message}")
        self.status = status
        self.category = category
        self.message = message
        self.context = {k: list(v) for k, v in (context or {}).items()}
        self.errors = [dict(e) for e in errors or ()]
        self.sub_category = sub_category
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body HubSpot sends for this error."""
        out: dict[str, Any] = {"status": "error", "message": self.message, "correlationId": correlation_id(),
                               "category": self.category}
        if self.sub_category:
            out["subCategory"] = self.sub_category
        if self.context:
            out["context"] = self.context
        if self.errors:
            out["errors"] = self.errors
        out.update(self.extra)
        return out


def not_found_object(object_id: str) -> ApiError:
    """404 for ``GET /crm/v3/objects/{type}/{id}`` on an unknown id.

    The odd double space is HubSpot's own text ("Object not found.  objectId are usually numeric.").
    """
    return ApiError(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.",
                    context={"id": [object_id]})


def route_not_found(path: str) -> ApiError:
    """404 for a path the emulator does not serve."""
    return ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find a resource at {path}")


def validation(message: str, *, errors: Sequence[Mapping[str, Any]] | None = None,
               context: Mapping[str, Sequence[str]] | None = None) -> ApiError:
    """400 ``VALIDATION_ERROR``."""
    return ApiError(400, "VALIDATION_ERROR", message, errors=errors, context=context)


def invalid_json(detail: str) -> ApiError:
    """400 for a body that is not the JSON the endpoint expects."""
    return ApiError(400, "VALIDATION_ERROR", f"Invalid input JSON on line 1, column 1: {detail}")


def invalid_auth() -> ApiError:
    """401 ``INVALID_AUTHENTICATION`` (no token, or one HubSpot does not know)."""
    return ApiError(401, "INVALID_AUTHENTICATION", INVALID_AUTH_MESSAGE)


def expired_auth(seconds_ago: int, expired_at_iso: str) -> ApiError:
    """401 ``EXPIRED_AUTHENTICATION`` for an OAuth access token past its ``expires_in``.

    Shape as HubSpot sends it: ``"The OAuth token used to make this call expired 75 second(s) ago."`` with
    ``category: EXPIRED_AUTHENTICATION`` and ``context: {"expire time": ["2022-06-21T10:37:52.040Z"]}``, as
    logged verbatim by integrations handling it (public client code quoting the live body).
    """
    return ApiError(401, "EXPIRED_AUTHENTICATION",
                    f"The OAuth token used to make this call expired {max(seconds_ago, 0)} second(s) ago.",
                    context={"expire time": [expired_at_iso]})


def standard_error(category: str, message: str, context: Mapping[str, Sequence[str]],
                   *, status: str = "error") -> dict[str, Any]:
    """One per-input error of a 207 (the spec's ``StandardError``: all six fields are required)."""
    return {"status": status, "category": category, "message": message,
            "context": {k: list(v) for k, v in context.items()}, "errors": [], "links": {}}


def invalid_request(problems: Sequence[tuple[str, str, Sequence[str]]]) -> ApiError:
    """400 ``VALIDATION_ERROR`` for a request its operation in HubSpot's spec rejects.

    ``problems`` are (where, what, missing required fields). Missing fields get HubSpot's own wording, "Some
    required fields were not set: [type]" (quoted from a live 400 in github.com/airbytehq/airbyte/issues/83314;
    ``create_group`` in :mod:`.properties` uses it too). For other schema errors HubSpot's text is "Invalid input
    JSON on line L, column C: <Jackson's message>", whose position and wording the emulator cannot reproduce, so it
    names the field and the problem instead. Each problem is also an ``errors`` item with its location in ``in``
    (the spec's ``ErrorDetail``).
    """
    missing = sorted({name for _, _, names in problems for name in names})
    if missing and all(names for _, _, names in problems):
        message = f"Some required fields were not set: [{', '.join(missing)}]"
    else:
        message = "Invalid input JSON: " + "; ".join(f"{where}: {what}" if where else what
                                                     for where, what, _ in problems)
    return validation(message, errors=[{"message": what, "in": where} for where, what, _ in problems])
