"""Errors in the shapes Salesforce sends them.

Request-level errors are a JSON *array* of ``{"message", "errorCode"[, "fields"]}`` with a 4xx status
(REST API "Status Codes and Error Responses":
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm). Per-record errors
inside a SaveResult use ``statusCode`` instead of ``errorCode``
(https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class ApiError(Exception):
    """A request-level failure: ``status`` and the error list Salesforce would send."""

    def __init__(self, status: int, code: str, message: str, fields: Sequence[str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields) if fields is not None else None

    def body(self) -> list[dict[str, Any]]:
        """The JSON array body."""
        item: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            item["fields"] = self.fields
        return [item]


class RecordError(Exception):
    """A per-record failure inside a batch (one SaveResult error)."""

    def __init__(self, code: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fields = list(fields)

    def as_save_error(self) -> dict[str, Any]:
        """The ``errors[]`` item of a SaveResult."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def as_bulk_error(self) -> str:
        """The ``sf__Error`` column of a Bulk API 2.0 failed-results row: ``CODE:message:fields --``.

        Observed format, e.g. ``INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--`` and
        ``INVALID_FIELD:Failed to deserialize field at col 3. Due to, 'x' is not a valid value for the type
        xsd:date:CloseDate --`` (quoted in Bulk 2.0 client tests such as those of the ``go-salesforce`` and
        Salesforce loader projects).
        """
        fields = " ".join(self.fields)
        return f"{self.code}:{self.message}:{fields + ' ' if fields else ''}--"


def invalid_session() -> ApiError:
    """401 for an unknown, expired or missing session id (REST API status codes: 401 + errorCode)."""
    return ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def not_found() -> ApiError:
    """404 for a resource that does not exist."""
    return ApiError(404, "NOT_FOUND", "The requested resource does not exist")


def method_not_allowed(method: str) -> ApiError:
    """405 for a known resource called with a verb it does not support."""
    return ApiError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed. Allowed are GET,HEAD")


def json_parser_error(message: str) -> ApiError:
    """400 for a body that cannot be deserialized into the target types."""
    return ApiError(400, "JSON_PARSER_ERROR", message)
