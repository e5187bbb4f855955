"""Sending the alerts of a finished run: a Slack incoming webhook, a generic JSON webhook, e-mail over SMTP.

Which runs alert is decided by :mod:`core.alert_rules`; this module reads the channels' secrets from the
environment variables ``[alerts]`` names, builds one message per run and sends it to every channel at once.

Sending is best effort: a channel that fails (a variable not set, a refused login, a timeout, an HTTP error) is
logged and recorded in the run's summary (``alerts.deliveries``), never raised, so an alert can never fail a sync.
Each request has a short timeout (``alerts.timeout_seconds``) and is retried once through the shared transport
policy (:class:`connectors.transport.Transport`) when the failure is transient (a dropped connection, a timeout, a
429 honouring ``Retry-After``, a 5xx; an SMTP 4xx reply, RFC 5321 §4.2.1). Nothing secret is ever logged or
recorded: webhook URLs are secrets in themselves (a Slack URL carries its token in the path), so errors name the
channel and the key, never the URL, and every text goes through :func:`core.redact.redact`.

Message shapes:

* Slack (https://api.slack.com/messaging/webhooks): a POST of ``{"text": ..., "blocks": [...]}``; ``text`` is the
  fallback shown in notifications when ``blocks`` are given, and ``&``, ``<``, ``>`` are escaped as Slack's
  formatting reference asks (https://api.slack.com/reference/surfaces/formatting#escaping). Slack answers 200
  ``ok``, or 400/403/404/410 with a short error string (``invalid_payload``, ``channel_is_archived``,
  https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks), and 429 when posting faster
  than about one message a second.
* Generic webhook: a POST of :func:`payload` (run id, status, mode, counts, the rules that fired, CRM and
  connection id; no links).
* E-mail: a plain-text message with the same lines, through ``smtplib`` with STARTTLS or implicit TLS.
"""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import smtplib
import ssl
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx

from connectors.transport import Limits, RateLimiter, Transient, Transport
from core.alert_rules import Trigger, evaluate
from core.config import AlertsConfig, ClmConfig, SmtpConfig, secret
from core.errors import ClmError
from core.redact import redact, redact_values

log = logging.getLogger("clm.alerts")


class _HiddenUrls(logging.Filter):
    """Replaces the webhook URLs in use in httpx's own request log lines (``HTTP Request: POST <url>``, at INFO,
    shown by ``clm -v``): a webhook URL is a secret that :func:`core.redact.redact` cannot recognise."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.urls:
            text = record.getMessage()
            for url in self.urls:
                text = text.replace(url, "[alert webhook URL]")
            record.msg, record.args = text, None
        return True


_hidden = _HiddenUrls()
logging.getLogger("httpx").addFilter(_hidden)

#: One retry: an alert is worth a second try, not a run held up by a notification service that is down.
ATTEMPTS = 2
#: Longest ``Retry-After`` waited for (Slack asks for about a second).
MAX_RETRY_AFTER = 5.0
#: The run counts an alert carries.
COUNTS = ("pulled_contacts", "pulled_deals", "deleted", "planned_records", "written_records", "already_current",
          "rejected_count", "held_back", "gone", "conflicts", "api_calls", "retries")


@dataclass(frozen=True)
class Delivery:
    """What happened on one channel: sent, or why not (never the secret)."""

    channel: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Alert:
    """One notification: a title, lines for people, and the machine-readable payload."""

    title: str
    lines: list[str]
    data: dict[str, Any]


def notify_run(config: ClmConfig, state: Any, summary: Mapping[str, Any],
               metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """Evaluate the alert rules on a finished run and send what they trigger; returns what to record with the
    run (``{}`` when no channel is configured, the run is a dry run, or no rule fired). Never raises."""
    alerts = config.alerts
    if not alerts.channels() or "dry-run" in str(summary.get("mode", "")):
        return {}
    try:
        previous = previous_metrics(state, int(summary.get("run_id") or 0))
        triggers = evaluate(alerts, summary, metrics, previous)
        if not triggers:
            return {}
        alert = run_alert(config, getattr(state, "connection_id", ""), summary, triggers)
        deliveries = send(alerts, alert)
    except Exception as exc:  # an alert must never fail the run it reports on
        log.warning("alerts not sent: %s", redact(f"{type(exc).__name__}: {exc}"), extra={"step": "alerts"})
        return {"triggers": [], "deliveries": [asdict(Delivery("all", False, redact(str(exc))))]}
    return {"triggers": [t.to_dict() for t in triggers], "deliveries": [asdict(d) for d in deliveries]}


def previous_metrics(state: Any, run_id: int) -> dict[str, Any] | None:
    """The snapshot of the latest run before ``run_id`` that computed one (dry runs and pulls left out: a dry run
    may try another configuration, a pull computes nothing)."""
    for record in state.runs(50):
        if record.id >= run_id or record.metrics is None or record.mode.startswith(("dry-run", "pull")):
            continue
        return dict(record.metrics)
    return None


def run_alert(config: ClmConfig, connection: str, summary: Mapping[str, Any], triggers: list[Trigger]) -> Alert:
    """The notification of a run that triggered rules."""
    run_id, status = summary.get("run_id"), str(summary.get("status", ""))
    counts = {key: int(summary.get(key) or 0) for key in COUNTS}
    unwritten = [str(name) for name in summary.get("unwritten_fields") or []]
    lines = [t.message for t in triggers]
    lines.append(f"pulled {counts['pulled_contacts']:,} contacts and {counts['pulled_deals']:,} deals; wrote "
                 f"{counts['written_records']:,} records, {counts['rejected_count']:,} rejected, "
                 f"{counts['conflicts']:,} conflicts")
    if unwritten:
        lines.append(f"not written: {', '.join(unwritten)}")
    lines.append(f"details: `clm runs show {run_id}`")
    data = {
        "source": "crm-lifecycle", "event": "run.alert", "run_id": run_id, "status": status,
        "mode": summary.get("mode"), "as_of": summary.get("as_of"), "crm": config.crm.kind,
        "connection": connection, "counts": counts, "unwritten_fields": unwritten,
        "triggers": [t.to_dict() for t in triggers], "message": summary.get("message") or "",
        "problems": list(summary.get("problems") or [])[:5],
    }
    return Alert(redact(f"crm-lifecycle: run {run_id} {status} ({config.crm.kind})"),
                 [redact(line) for line in lines], redact_values(data))


def trial_alert(config: ClmConfig, connection: str) -> Alert:
    """A notification that only says the channel works (``clm alerts test``)."""
    data: dict[str, Any] = {
        "source": "crm-lifecycle", "event": "test", "run_id": None, "status": "test", "crm": config.crm.kind,
        "connection": connection, "counts": {}, "unwritten_fields": [], "triggers": [], "message": "test"}
    return Alert(f"crm-lifecycle: test alert ({config.crm.kind})",
                 ["This is a test from `clm alerts test`: alerts of unattended runs will arrive here."], data)


def send(alerts: AlertsConfig, alert: Alert) -> list[Delivery]:
    """Send ``alert`` to every configured channel at once; one :class:`Delivery` each, in channel order."""
    senders: dict[str, Callable[[], None]] = {}
    if alerts.slack_webhook_url_env:
        env = alerts.slack_webhook_url_env
        senders["slack"] = lambda: _post(env, "alerts.slack_webhook_url_env", slack_payload(alert),
                                         alerts.timeout_seconds)
    if alerts.webhook_url_env:
        env_generic = alerts.webhook_url_env
        senders["webhook"] = lambda: _post(env_generic, "alerts.webhook_url_env", payload(alert),
                                           alerts.timeout_seconds)
    if alerts.smtp is not None:
        smtp = alerts.smtp
        senders["smtp"] = lambda: _send_mail(smtp, email_message(smtp, alert), alerts.timeout_seconds)
    if not senders:
        return []
    with ThreadPoolExecutor(max_workers=len(senders), thread_name_prefix="alert") as pool:
        futures = {name: pool.submit(_deliver, name, sender) for name, sender in senders.items()}
        return [future.result() for future in futures.values()]


def _deliver(channel: str, sender: Callable[[], None]) -> Delivery:
    try:
        sender()
    except ClmError as exc:
        detail = redact(exc.message + (f" — {exc.hint}" if exc.hint else ""))
    except Exception as exc:  # best effort: whatever a channel raises is recorded
        detail = redact(f"{type(exc).__name__}: {exc}")
    else:
        log.info("alert sent through %s", channel, extra={"step": "alerts"})
        return Delivery(channel, True)
    log.warning("alert not sent through %s: %s", channel, detail, extra={"step": "alerts"})
    return Delivery(channel, False, detail)


# --- shapes ------------------------------------------------------------------------------------------------


def payload(alert: Alert) -> dict[str, Any]:
    """The generic webhook's JSON body."""
    return {**alert.data, "title": alert.title, "lines": alert.lines}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: Alert) -> dict[str, Any]:
    """The Slack incoming-webhook body: a fallback ``text`` and Block Kit blocks (header, lines, context)."""
    body = "\n".join(f"• {_slack_escape(line)}" for line in alert.lines)
    context = " · ".join(_slack_escape(str(alert.data.get(key))) for key in ("crm", "connection", "mode", "as_of")
                         if alert.data.get(key))
    blocks: list[dict[str, Any]] = [
        # Header text is plain_text of at most 150 characters (Block Kit reference: header block).
        {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150]}},
        # A section's text is at most 3,000 characters (Block Kit reference: section block).
        {"type": "section", "text": {"type": "mrkdwn", "text": body[:3000]}},
    ]
    if context:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context[:3000]}]})
    return {"text": _slack_escape(alert.title + ": " + "; ".join(alert.lines[:2])), "blocks": blocks}


def email_message(smtp: SmtpConfig, alert: Alert) -> EmailMessage:
    """The alert as a plain-text e-mail."""
    message = EmailMessage()
    message["Subject"] = alert.title
    message["From"] = smtp.from_address
    message["To"] = ", ".join(smtp.to)
    message["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = email.utils.make_msgid(domain=smtp.from_address.rpartition("@")[2])
    facts = [f"{key}: {alert.data[key]}" for key in ("run_id", "status", "mode", "as_of", "crm", "connection")
             if alert.data.get(key) is not None]
    message.set_content("\n".join([*alert.lines, "", *facts]) + "\n")
    return message


# --- transports ----------------------------------------------------------------------------------------------


def _transport() -> Transport:
    # Our own limiter: an alert shares nothing with the CRM's allowance.
    return Transport(RateLimiter(Limits(window_requests=10, window_seconds=1.0)), attempts=ATTEMPTS,
                     backoff_base=0.5, backoff_max=1.0)


def webhook_url(env: str, key_path: str) -> str:
    """The URL in the variable ``key_path`` names, checked: https, or http to this machine only (the alert and a
    URL that is a credential would otherwise cross the network in clear). The URL is never put in a message."""
    url = secret(env, key_path)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises ValueError on a port that is not a number
    except ValueError:
        raise ClmError(f"{env} (named by {key_path}) does not hold a URL",
                       hint="set it to the webhook's URL, e.g. https://hooks.slack.com/services/...") from None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ClmError(f"{env} (named by {key_path}) does not hold an http(s) URL with a host",
                       hint="set it to the webhook's URL, e.g. https://hooks.slack.com/services/...")
    if parts.scheme == "http" and not _loopback(host):
        raise ClmError(f"{env} (named by {key_path}) is a plain-http URL to another machine",
                       hint="use the webhook's https URL")
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _post(env: str, key_path: str, body: dict[str, Any], timeout: float) -> None:
    url = webhook_url(env, key_path)
    where = f"the URL in {env}"

    def request() -> httpx.Response:
        try:
            response = client.post(url, json=body)
        except httpx.TimeoutException:
            raise Transient(f"no answer from {where} within {timeout:g}s") from None
        except httpx.TransportError as exc:
            raise Transient(f"cannot reach {where} ({type(exc).__name__})") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise Transient(f"{where} answered HTTP {response.status_code}",
                            retry_after=_retry_after(response.headers.get("Retry-After")),
                            throttled=response.status_code == 429)
        return response

    hidden = {url, str(httpx.URL(url))}
    _hidden.urls.update(hidden)
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = _transport().call(request)
    except Transient as exc:
        raise ClmError(f"{exc.reason} after {ATTEMPTS} attempts") from None
    finally:
        _hidden.urls.difference_update(hidden)
    if not 200 <= response.status_code < 300:
        # Slack's error bodies are short codes (invalid_payload, no_service): worth showing, redacted and cut.
        text = response.text.strip()[:120]
        raise ClmError(f"{where} answered HTTP {response.status_code}" + (f": {text}" if text else ""),
                       hint="check that the webhook still exists (a removed Slack app or archived channel "
                            "answers 404/410)")


def _retry_after(value: str | None) -> float | None:
    try:
        return None if value is None else min(MAX_RETRY_AFTER, max(0.0, float(value)))
    except ValueError:
        return None


def _send_mail(smtp: SmtpConfig, message: EmailMessage, timeout: float) -> None:
    password = secret(smtp.password_env, "alerts.smtp.password_env") if smtp.password_env else None
    context = ssl.create_default_context()

    def request() -> None:
        try:
            client = (smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=context)
                      if smtp.security == "ssl" else smtplib.SMTP(smtp.host, smtp.port, timeout=timeout))
            with client:
                if smtp.security == "starttls":
                    client.starttls(context=context)
                if smtp.username is not None and password is not None:
                    client.login(smtp.username, password)
                client.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise ClmError(f"the SMTP server {smtp.host} refused the login ({exc.smtp_code})",
                           hint="check alerts.smtp.username and the password in alerts.smtp.password_env") from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise ClmError(f"the SMTP server {smtp.host} refused {len(exc.recipients)} recipient(s)",
                           hint="check alerts.smtp.to") from None
        except smtplib.SMTPResponseException as exc:
            reason = f"the SMTP server {smtp.host} answered {exc.smtp_code}"
            if 400 <= exc.smtp_code < 500:  # a transient negative reply (RFC 5321 §4.2.1): try again
                raise Transient(reason) from None
            raise ClmError(reason, hint="see the server's log; the reply is not shown as it may quote addresses") \
                from None
        except smtplib.SMTPNotSupportedError:
            raise ClmError(f"the SMTP server {smtp.host} does not offer STARTTLS",
                           hint="set alerts.smtp.security = \"ssl\" (port 465) if it speaks implicit TLS") from None
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError) as exc:
            if isinstance(exc, ssl.SSLCertVerificationError):
                raise ClmError(f"the SMTP server {smtp.host} has a certificate this machine does not trust",
                               hint="use the server's public name, or install its CA in the system store") \
                    from None
            raise Transient(f"cannot reach the SMTP server {smtp.host}:{smtp.port} ({type(exc).__name__})") from None

    try:
        _transport().call(request)
    except Transient as exc:
        raise ClmError(f"{exc.reason} after {ATTEMPTS} attempts") from None


def check(config: ClmConfig) -> list[dict[str, Any]]:
    """``clm check`` lines for the alert channels: each one's variables set and URLs well formed (nothing sent;
    ``clm alerts test`` sends)."""
    alerts = config.alerts
    lines = []
    for name, env, key in (("Slack webhook", alerts.slack_webhook_url_env, "alerts.slack_webhook_url_env"),
                           ("webhook", alerts.webhook_url_env, "alerts.webhook_url_env")):
        if env:
            try:
                webhook_url(env, key)
                lines.append({"name": f"alerts: {name} URL in {env}", "ok": True, "detail": "", "fix": ""})
            except ClmError as exc:
                lines.append({"name": f"alerts: {name} URL in {env}", "ok": False, "detail": exc.message,
                              "fix": exc.hint or ""})
    if alerts.smtp is not None and alerts.smtp.password_env:
        try:
            secret(alerts.smtp.password_env, "alerts.smtp.password_env")
            lines.append({"name": "alerts: SMTP password", "ok": True, "detail": alerts.smtp.password_env, "fix": ""})
        except ClmError as exc:
            lines.append({"name": "alerts: SMTP password", "ok": False, "detail": exc.message, "fix": exc.hint or ""})
    return lines
