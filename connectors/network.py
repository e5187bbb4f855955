"""Network failures that retrying cannot mend, told apart from the passing ones, each with its fix.

The shared transport retries every connection failure for about 8 s and then says the CRM "or the network is
failing; run again later" — the wrong advice when nothing listens at the address, the host name does not exist,
or the server's certificate is not trusted: those fail the same way on every attempt, tomorrow too. They are
recognised from the cause chain the HTTP libraries keep (urllib3's ``MaxRetryError.reason`` >
``NewConnectionError``/``NameResolutionError``/``SSLError`` > the ``OSError`` the socket raised; requests wraps
the same chain) and raised at once as a :class:`ConnectorError` naming the address and the fix.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

from core.errors import ConnectorError

#: getaddrinfo's "no such name" answers; EAI_AGAIN (a resolver that did not answer) may pass, so it is retried.
_NO_SUCH_NAME = {getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)}


def _causes(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or any(current is seen for seen in out) or len(out) > 20:
            continue
        out.append(current)
        reason = getattr(current, "reason", None)
        pending.extend([current.__cause__, current.__context__, reason if isinstance(reason, BaseException)
                        else None, *(a for a in current.args if isinstance(a, BaseException))])
    return out


def permanent_failure(exc: BaseException, crm: str, url: str, url_key: str) -> ConnectorError | None:
    """A :class:`ConnectorError` with the fix when ``exc`` is a network failure that another attempt would only
    repeat; None for failures worth retrying (timeouts, resets, a resolver that did not answer)."""
    parts = urlsplit(url)
    host = parts.hostname or url
    address = f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = getattr(cause, "verify_message", "") or str(cause)
            return ConnectorError(
                f"{crm}: the TLS certificate of {host} is not trusted ({detail})",
                hint=f"check {url_key} points at {crm} itself; behind a TLS-inspecting proxy, point "
                     "REQUESTS_CA_BUNDLE/SSL_CERT_FILE at your company's CA bundle. Retrying will not help")
        if isinstance(cause, ConnectionRefusedError):
            return ConnectorError(
                f"{crm}: connection to {address} refused — nothing is listening there",
                hint=f"check {url_key} ({url}); for a local sandbox, start it again (`clm sandbox serve`) "
                     "and use the address it prints")
        if isinstance(cause, socket.gaierror) and cause.errno in _NO_SUCH_NAME:
            return ConnectorError(
                f"{crm}: the host name '{host}' does not exist (DNS lookup failed)",
                hint=f"check the spelling of {url_key} ({url})")
    return None


def base_path_hint(crm: str, url: str, url_key: str, root: str) -> str | None:
    """The fix for a 404 on an API path when the configured base URL carries a path of its own
    (``https://api.hubapi.com/crm/v3``: the client appends ``/crm/v3/...`` again); None otherwise."""
    path = urlsplit(url).path.strip("/")
    if not path:
        return None
    return (f"{url_key} ends in '/{path}': {crm}'s client adds the API path itself — set it to the host only, "
            f"e.g. {root}")
