"""Sessions and logins: Bearer session ids, the OAuth 2.0 token endpoint and the SOAP ``login()`` call.

* ``POST /services/oauth2/token`` with:

  - ``client_credentials`` (consumer key/secret by HTTP Basic or as ``client_id``/``client_secret`` form fields;
    the token belongs to the connected app's run-as user). Salesforce answers it only on the org's My Domain:
    on ``login``/``test.salesforce.com`` it is ``invalid_grant`` "request not supported on this domain", and an
    app with no run-as user gets ``invalid_grant`` "no client credentials user enabled" (both as quoted by
    integrators, e.g. singer-io/tap-salesforce tests and help.salesforce.com
    articleView?id=xcloud.remoteaccess_oauth_client_credentials_flow.htm). No refresh token is issued.
  - ``refresh_token`` (``refresh_token``, ``client_id``, ``client_secret`` — required by default, "Require
    Secret for Refresh Token Flow"): a new access token and, unless the app rotates refresh tokens, no new
    refresh token (help.salesforce.com articleView?id=xcloud.remoteaccess_oauth_refresh_token_flow.htm). A
    revoked or expired refresh token gets ``invalid_grant`` "expired access/refresh token"
    (https://www.nango.dev/blog/salesforce-oauth-refresh-token-invalid-grant).
  - ``urn:ietf:params:oauth:grant-type:jwt-bearer`` (an RS256 JWT: ``iss`` = consumer key, ``sub`` = username,
    ``aud`` = ``https://login.salesforce.com``, ``https://test.salesforce.com`` or an Experience Cloud site URL
    — never the My Domain, which gets ``invalid_grant`` "audience is invalid": simple-salesforce#672,
    omniphx/forrest#302, help.salesforce.com articleView?id=xcloud.remoteaccess_oauth_jwt_flow.htm; signature
    checked when the emulator is given the connected app's certificate, otherwise only structure and claims).
  - ``password`` (the OAuth username-password flow): blocked by default in orgs created from Summer '23
    ("Allow OAuth Username-Password Flows" off, help.salesforce.com
    articleView?id=xcloud.remoteaccess_disable_username_password_flow_ca.htm). A blocked flow answers the same
    ``invalid_grant`` "authentication failure" as a wrong password; only Login History says "Username-Password
    Flow Disabled" (https://blog.enree.co/?p=2693), so a client cannot tell the two apart.

  Errors are standard OAuth bodies (https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_flow_errors.htm).
* ``POST /services/Soap/u/XX.X`` — the partner ``login()`` that simple-salesforce uses for username +
  password + security token; it answers ``serverUrl``/``sessionId``, or a fault (simple-salesforce reads
  ``sf:exceptionCode``/``sf:exceptionMessage``): ``INVALID_LOGIN`` for bad credentials, and ``INVALID_OPERATION``
  from API 65.0 on (login() is not available there) and in orgs where "SOAP API login()" is off, which is the
  default for orgs created from Winter '26; login() in 31.0-64.0 is retired in Summer '27
  (help.salesforce.com articleView?id=005132110 "Platform SOAP API login() Retirement"; fault texts as reported
  in forcedotcom/wsc#363 and OpenFn/adaptors#1715).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connectors.sandbox.salesforce.store import Store

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
#: Hosts that serve every org's login but not the client-credentials flow, which needs the org's My Domain.
LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")
#: SOAP ``login()`` is absent from this API version on (help.salesforce.com articleView?id=005132110).
SOAP_LOGIN_REMOVED_IN = 65.0
SOAP_VERSION_UNAVAILABLE = ("The SOAP Login operation is not available in the API version specified ({version}). "
                            "Refer to the documentation for supported versions.")
SOAP_LOGIN_DISABLED = ("SOAP API login() is disabled by default in this org. Contact the org administrator to "
                       "enable SOAP API login().")


@dataclass
class Session:
    """One issued session id."""

    token: str
    user_id: str
    issued_at: datetime
    last_used: datetime
    valid: bool = True


@dataclass
class Credentials:
    """How clients may log in to the emulated org."""

    username: str = "integration@clm-sandbox.example"
    password: str = "sandbox-password"
    security_token: str = "SANDBOXTOKEN"
    consumer_key: str = "3MVG9sandbox.consumer.key"
    consumer_secret: str = "sandbox-consumer-secret"
    jwt_certificate: bytes | None = None
    """PEM certificate (or public key) of the connected app; when set, JWT signatures are verified."""
    jwt_site_urls: tuple[str, ...] = ()
    """Experience Cloud site URLs also accepted as a JWT ``aud`` (besides login/test.salesforce.com)."""
    soap_login: bool = False
    """The org setting "Enable SOAP API login()": off, as in every org created from Winter '26."""
    username_password_flow: bool = False
    """The org setting "Allow OAuth Username-Password Flows": off, as in every org created from Summer '23."""
    client_credentials_run_as: bool = True
    """Whether the connected app has a run-as user for the client-credentials flow (an admin sets it)."""
    refresh_token: str = "5Aep861sandbox.refresh.token.for.the.integration.user"
    """A refresh token the integration user obtained once (web server flow with the ``refresh_token`` scope)."""
    require_secret_for_refresh: bool = True
    """The connected app's "Require Secret for Refresh Token Flow" (on by default)."""
    rotate_refresh_tokens: bool = False
    """Refresh token rotation: each refresh answers a new refresh token and revokes the one used."""


class Sessions:
    """Issued session ids with an inactivity timeout (Salesforce's default session timeout is 2 hours)."""

    def __init__(self, store: Store, ttl: timedelta | None = timedelta(hours=2)) -> None:
        self.store = store
        self.ttl = ttl
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def issue(self, token: str | None = None, user_id: str | None = None) -> str:
        """A new valid session id (``00D…!…`` like real ones) for a user (default: the integration user)."""
        token = token or f"{self.store.org.org_id[:15]}!AR{secrets.token_urlsafe(48)}"
        now = self.store.now()
        with self._lock:
            self._sessions[token] = Session(token, user_id or self.store.org.user_id, now, now)
        return token

    def snapshot(self) -> list[Session]:
        """Every issued session (for a saved org)."""
        with self._lock:
            return list(self._sessions.values())

    def restore(self, sessions: Iterable[Session]) -> None:
        """Sessions of a saved org: ids a user exported before a restart stay valid, within their timeout."""
        with self._lock:
            self._sessions.update((session.token, session) for session in sessions)

    def lookup(self, authorization: str | None) -> Session | None:
        """The live session named by an ``Authorization: Bearer <id>`` (or legacy ``OAuth <id>``) header."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not token:
            return None
        now = self.store.now()
        with self._lock:
            session = self._sessions.get(token.strip())
            if session is None or not session.valid:
                return None
            if self.ttl is not None and now - session.last_used > self.ttl:
                session.valid = False
                return None
            session.last_used = now
            return session

    def expire(self, token: str | None = None) -> None:
        """Invalidate one session id, or all of them."""
        with self._lock:
            for session in self._sessions.values():
                if token is None or session.token == token:
                    session.valid = False


def _oauth_error(error: str, description: str, status: int = 400) -> tuple[int, dict[str, Any]]:
    return status, {"error": error, "error_description": description}


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _public_key(pem: bytes) -> rsa.RSAPublicKey:
    key = (x509.load_pem_x509_certificate(pem).public_key() if b"CERTIFICATE" in pem
           else serialization.load_pem_public_key(pem))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the connected app certificate must hold an RSA key")
    return key


class Logins:
    """The token endpoint and the SOAP login of the emulated org."""

    def __init__(self, store: Store, sessions: Sessions, credentials: Credentials) -> None:
        self.store = store
        self.sessions = sessions
        self.credentials = credentials
        self._revoked_refresh_tokens: set[str] = set()
        self._lock = threading.Lock()

    def revoke_refresh_tokens(self) -> None:
        """Revoke every refresh token issued so far (an admin revoking the app's access, or a policy expiry)."""
        with self._lock:
            self._revoked_refresh_tokens.add(self.credentials.refresh_token)

    def _password_ok(self, username: str | None, password: str | None) -> bool:
        creds = self.credentials
        if username is None or username.lower() != creds.username.lower() or password is None:
            return False
        # From a trusted IP range the security token may be omitted; otherwise it is appended to the password.
        return password in (creds.password + creds.security_token, creds.password)

    def _grant(self, base_url: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        token = self.sessions.issue()
        org, user = self.store.org.org_id, self.store.org.user_id
        issued = str(int(time.time() * 1000))
        signature = base64.b64encode(secrets.token_bytes(32)).decode()
        return {"access_token": token, "instance_url": base_url, "id": f"{base_url}/id/{org}/{user}",
                "token_type": "Bearer", "issued_at": issued, "signature": signature, **(extra or {})}

    def token(self, form: dict[str, str], authorization: str | None, base_url: str,
              host: str | None = None) -> tuple[int, dict[str, Any]]:
        """``POST /services/oauth2/token`` (``host``: the host the client asked for): (status, JSON body)."""
        creds = self.credentials
        grant = form.get("grant_type")
        if grant == "password":
            if form.get("client_id") != creds.consumer_key:
                return _oauth_error("invalid_client_id", "client identifier invalid")
            if form.get("client_secret") not in (None, creds.consumer_secret):
                return _oauth_error("invalid_client", "invalid client credentials")
            if not creds.username_password_flow or not self._password_ok(form.get("username"), form.get("password")):
                return _oauth_error("invalid_grant", "authentication failure")
            return 200, self._grant(base_url)
        if grant == JWT_GRANT:
            return self._jwt(form.get("assertion") or "", base_url)
        if grant == "client_credentials":
            return self._client_credentials(form, authorization, base_url, host)
        if grant == "refresh_token":
            return self._refresh(form, base_url)
        return _oauth_error("unsupported_grant_type", "grant type not supported")

    def _client_credentials(self, form: dict[str, str], authorization: str | None, base_url: str,
                            host: str | None) -> tuple[int, dict[str, Any]]:
        creds = self.credentials
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() == "basic":
            try:
                key, _, secret = base64.b64decode(encoded).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                key = secret = ""
        else:
            key, secret = form.get("client_id", ""), form.get("client_secret", "")
        if key != creds.consumer_key:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if secret != creds.consumer_secret:
            return _oauth_error("invalid_client", "invalid client credentials")
        if (host or "").split(":", 1)[0].lower() in LOGIN_HOSTS:
            return _oauth_error("invalid_grant", "request not supported on this domain")
        if not creds.client_credentials_run_as:
            return _oauth_error("invalid_grant", "no client credentials user enabled")
        return 200, self._grant(base_url, {"scope": "api"})

    def _refresh(self, form: dict[str, str], base_url: str) -> tuple[int, dict[str, Any]]:
        creds = self.credentials
        if form.get("client_id") != creds.consumer_key:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        secret = form.get("client_secret")
        # Unknown: the exact description Salesforce gives for a missing secret; the OAuth code is invalid_client.
        if (secret is None and creds.require_secret_for_refresh) or secret not in (None, creds.consumer_secret):
            return _oauth_error("invalid_client", "invalid client credentials")
        with self._lock:
            token = form.get("refresh_token")
            if token != creds.refresh_token or token in self._revoked_refresh_tokens:
                return _oauth_error("invalid_grant", "expired access/refresh token")
            extra: dict[str, Any] = {"scope": "api refresh_token"}
            if creds.rotate_refresh_tokens:
                self._revoked_refresh_tokens.add(token)
                creds.refresh_token = f"5Aep861{secrets.token_urlsafe(48)}"
                extra["refresh_token"] = creds.refresh_token
        return 200, self._grant(base_url, extra)

    def _jwt(self, assertion: str, base_url: str) -> tuple[int, dict[str, Any]]:
        creds = self.credentials
        parts = assertion.split(".")
        if len(parts) != 3:
            return _oauth_error("invalid_grant", "invalid assertion")
        try:
            header = json.loads(_b64decode(parts[0]))
            claims = json.loads(_b64decode(parts[1]))
            signature = _b64decode(parts[2])
        except (ValueError, binascii.Error):
            return _oauth_error("invalid_grant", "invalid assertion")
        if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "RS256":
            return _oauth_error("invalid_grant", "invalid assertion")
        if creds.jwt_certificate is not None:
            try:
                _public_key(creds.jwt_certificate).verify(signature, f"{parts[0]}.{parts[1]}".encode(),
                                                          padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                return _oauth_error("invalid_grant", "invalid assertion")
        if claims.get("iss") != creds.consumer_key:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        # The audience is the login server (or a site), not the org's My Domain, even when the token request
        # goes to the My Domain.
        audiences = {a.rstrip("/") for a in (*LOGIN_AUDIENCES, *creds.jwt_site_urls)}
        if str(claims.get("aud", "")).rstrip("/") not in audiences:
            return _oauth_error("invalid_grant", "audience is invalid")
        try:
            expires = float(claims.get("exp", 0))
        except (TypeError, ValueError):
            return _oauth_error("invalid_grant", "invalid assertion")
        if expires < time.time():  # the client signs with the real clock, whatever the org's clock says
            return _oauth_error("invalid_grant", "expired authorization code")
        if str(claims.get("sub", "")).lower() != creds.username.lower():
            return _oauth_error("invalid_grant", "user hasn't approved this consumer")
        return 200, self._grant(base_url, {"scope": "api"})

    def soap_login(self, body: bytes, version: str, base_url: str) -> tuple[int, str]:
        """``POST /services/Soap/u/{version}``: (status, XML)."""
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return 500, _soap_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked "
                                                     "out.")
        try:
            removed = float(version) >= SOAP_LOGIN_REMOVED_IN
        except ValueError:
            removed = False
        if removed:
            return 500, _soap_fault("INVALID_OPERATION", SOAP_VERSION_UNAVAILABLE.format(version=version))
        if not self.credentials.soap_login:
            return 500, _soap_fault("INVALID_OPERATION", SOAP_LOGIN_DISABLED)
        values = {element.tag.rsplit("}", 1)[-1]: (element.text or "") for element in root.iter()}
        if not self._password_ok(values.get("username"), values.get("password")):
            return 500, _soap_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked "
                                                     "out.")
        token = self.sessions.issue()
        org, user = self.store.org.org_id, self.store.org.user_id
        creds = self.credentials
        server = f"{base_url}/services/Soap/u/{version}/{org[:15]}"
        return 200, (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            "<soapenv:Body><loginResponse><result>"
            f"<metadataServerUrl>{base_url}/services/Soap/m/{version}/{org[:15]}</metadataServerUrl>"
            "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
            f"<serverUrl>{server}</serverUrl><sessionId>{escape(token)}</sessionId><userId>{user}</userId>"
            f"<userInfo><organizationId>{org}</organizationId><userEmail>{escape(creds.username)}</userEmail>"
            f"<userFullName>CLM Integration</userFullName><userId>{user}</userId>"
            f"<userName>{escape(creds.username)}</userName></userInfo>"
            "</result></loginResponse></soapenv:Body></soapenv:Envelope>")

    def identity(self, base_url: str, user_id: str | None = None) -> dict[str, Any]:
        """The identity URL / ``userinfo`` answer for a session's user (default: the integration user)."""
        org, user = self.store.org.org_id, user_id or self.store.org.user_id
        version = "{version}"  # identity URLs carry this placeholder literally, for the client to fill in
        return {
            "id": f"{base_url}/id/{org}/{user}", "sub": f"{base_url}/id/{org}/{user}", "user_id": user,
            "organization_id": org, "username": self.credentials.username,
            "preferred_username": self.credentials.username, "email": self.credentials.username,
            "nickname": "clm.integration", "display_name": "CLM Integration", "name": "CLM Integration",
            "active": True, "user_type": "STANDARD", "language": "en_US", "locale": "en_US", "utcOffset": 0,
            "is_app_installed": True,
            "urls": {
                "rest": f"{base_url}/services/data/v{version}/",
                "sobjects": f"{base_url}/services/data/v{version}/sobjects/",
                "query": f"{base_url}/services/data/v{version}/query/",
                "tooling_rest": f"{base_url}/services/data/v{version}/tooling/",
                "profile": f"{base_url}/{user}",
            },
        }


def _soap_fault(code: str, message: str) -> str:
    # Bad credentials are a LoginFault; which fault element carries INVALID_OPERATION is not documented (wsc
    # reports an ApiFault): the partner WSDL's generic one, UnexpectedErrorFault, is assumed.
    fault = "LoginFault" if code == "INVALID_LOGIN" else "UnexpectedErrorFault"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode><faultstring>{code}: {escape(message)}"
        f'</faultstring><detail><sf:{fault} xsi:type="sf:{fault}"><sf:exceptionCode>{code}</sf:exceptionCode>'
        f"<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage></sf:{fault}></detail></soapenv:Fault>"
        "</soapenv:Body></soapenv:Envelope>")
