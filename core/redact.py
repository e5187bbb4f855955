"""The one redactor: tokens, passwords and e-mail addresses out of any text we log, store or export.

CRM text (rejection messages, values in fields that did not fit their type, error bodies) can carry a person's
e-mail address or a credential echoed back by a proxy or an API, and a user can paste a token where text goes.
Logs (``cli.logs``), the state file (``sync.state``: rejections and run summaries) and exports (``sync.exports``)
all pass their text through :func:`redact`, so the rule is the same everywhere (issue 14: e-mail addresses from
CRM rejection messages were printed by ``clm -v sync`` and stored in the state file).

Control characters (an ESC that restyles a terminal, an OSC 8 link, a NUL) are replaced by their visible escape
(``\\x1b``), the form the terminal writer (``cli.output.literal``) shows, so nothing hidden survives and what was
there stays readable in a log or a report.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"
EMAIL = "[email]"

#: ``scheme://user:password@host``: the credentials of a URL (a password in ``base_url`` or a proxy URL).
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@:]+:[^\s/@]*@")
#: A Salesforce session id, which is also its OAuth access token: the org id (15 characters starting ``00D``),
#: ``!``, then the session part (the shape simple-salesforce's ``session_id`` and the sandbox's tokens have).
_SALESFORCE_SESSION = re.compile(r"\b00D[A-Za-z0-9]{12,15}![A-Za-z0-9._~+/=-]+")
#: ``Authorization: Bearer …`` (HubSpot, OAuth 2) and ``Authorization: OAuth …`` (Salesforce's older form).
_AUTH_HEADER = re.compile(r"(?i)\b(bearer|oauth)(\s+)[^\s\"',;]+")
#: ``name=value`` pairs of query strings, form bodies and ``key=value`` log text that carry a secret.
_SECRET_PAIR = re.compile(
    r"(?i)\b(access_token|refresh_token|id_token|session_?id|sid|token|password|passwd|pwd|secret|client_secret|"
    r"api_?key|hapikey|assertion)=[^\s&\"',;]+")
#: The same names as JSON members (an OAuth token response or error body quoted in a message).
_SECRET_JSON = re.compile(
    r"(?i)(\"(?:access_token|refresh_token|id_token|session_?id|token|password|client_secret|api_?key|"
    r"assertion)\"\s*:\s*\")[^\"]*")
#: HubSpot private-app and personal access keys: ``pat-<region>-<uuid>``
#: (https://developers.hubspot.com/docs/api/private-apps).
_HUBSPOT_TOKEN = re.compile(r"(?i)\bpat-[a-z0-9]{2,4}-[0-9a-f-]{8,}")
_EMAIL_ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
#: C0 and C1 control characters except newline and tab.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def redact(text: str) -> str:
    """``text`` without credentials (replaced by ``[redacted]``) or e-mail addresses (``[email]``), control
    characters shown as escapes."""
    # Credentials of a URL first: its ``password@host`` would otherwise read as an e-mail address.
    text = _URL_CREDENTIALS.sub(lambda m: m.group(1) + REDACTED + "@", text)
    text = _SALESFORCE_SESSION.sub(REDACTED, text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    text = _SECRET_PAIR.sub(lambda m: m.group(1) + "=" + REDACTED, text)
    text = _SECRET_JSON.sub(lambda m: m.group(1) + REDACTED, text)
    text = _HUBSPOT_TOKEN.sub(REDACTED, text)
    text = _EMAIL_ADDRESS.sub(EMAIL, text)
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def redact_values(value: Any) -> Any:
    """``value`` with :func:`redact` applied to every string inside it (dicts, lists and tuples walked; keys,
    numbers and other values kept), for JSON documents such as a run summary or an export row."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_values(v) for v in value]
    return value
