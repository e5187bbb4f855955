"""Authentication (session ids, SOAP login, OAuth password / JWT / client-credentials) and daily API limits."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from connectors.sandbox.salesforce import Credentials, client_session
from tests.connectors.sandbox.salesforce.conftest import Sandbox, Switch, plug

INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


def test_unknown_and_expired_sessions_get_401(sandbox: Sandbox, sf: Salesforce) -> None:
    stranger = Salesforce(instance_url=sandbox.server.url, session_id="00Dnope!bad",
                          session=client_session(sandbox.server))
    with pytest.raises(SalesforceExpiredSession) as exc:
        stranger.query("SELECT Id FROM Contact")
    assert exc.value.status == 401 and exc.value.content == INVALID_SESSION
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 300
    sandbox.org.expire_sessions(sandbox.org.session_id)
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT COUNT() FROM Contact")


def test_session_times_out_after_inactivity(shared_server: tuple[Any, Switch, Any]) -> None:
    now = [dt.datetime(2024, 6, 1, tzinfo=dt.UTC)]
    box = plug(shared_server, contacts=5, deals=0, clock=lambda: now[0], session_ttl=dt.timedelta(hours=2))
    sf = box.client()
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 5
    now[0] += dt.timedelta(hours=1, minutes=59)
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 5  # activity extends the session
    now[0] += dt.timedelta(hours=2, minutes=1)
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT COUNT() FROM Contact")


def test_soap_login_with_security_token_and_transparent_refresh(sandbox: Sandbox) -> None:
    creds = sandbox.org.credentials
    creds.soap_login = True  # an org created before Winter '26, or one whose admin enabled SOAP API login()
    sf = Salesforce(username=creds.username, password=creds.password, security_token=creds.security_token,
                    session=client_session(sandbox.server))
    assert sf.sf_instance == sandbox.server.url.removeprefix("https://")
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 300
    first_session = sf.session_id
    sandbox.org.expire_sessions()
    # simple-salesforce logs in again on INVALID_SESSION_ID when it holds credentials.
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 300
    assert sf.session_id != first_session
    assert sandbox.org.request_counts["POST /services/Soap/u"] == 2


def test_soap_login_failure(sandbox: Sandbox) -> None:
    sandbox.org.credentials.soap_login = True
    with pytest.raises(SalesforceAuthenticationFailed) as exc:
        Salesforce(username=sandbox.org.credentials.username, password="wrong", security_token="x",
                   session=client_session(sandbox.server))
    assert exc.value.code == "INVALID_LOGIN"
    assert "Invalid username, password, security token; or user locked out." in exc.value.auth_message


def test_soap_login_is_refused_in_a_new_org_and_from_api_65(sandbox: Sandbox) -> None:
    creds = sandbox.org.credentials
    with pytest.raises(SalesforceAuthenticationFailed) as new_org:
        Salesforce(username=creds.username, password=creds.password, security_token=creds.security_token,
                   session=client_session(sandbox.server))
    assert new_org.value.code == "INVALID_OPERATION"
    assert new_org.value.auth_message == ("SOAP API login() is disabled by default in this org. Contact the org "
                                          "administrator to enable SOAP API login().")
    creds.soap_login = True
    with pytest.raises(SalesforceAuthenticationFailed) as v65:
        Salesforce(username=creds.username, password=creds.password, security_token=creds.security_token,
                   version="65.0", session=client_session(sandbox.server))
    assert (v65.value.code, v65.value.auth_message) == (
        "INVALID_OPERATION", "The SOAP Login operation is not available in the API version specified (65.0). "
                             "Refer to the documentation for supported versions.")
    sf = Salesforce(username=creds.username, password=creds.password, security_token=creds.security_token,
                    version="64.0", session=client_session(sandbox.server))
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 300


def test_oauth_password_grant(sandbox: Sandbox) -> None:
    creds = sandbox.org.credentials
    with pytest.raises(SalesforceAuthenticationFailed) as blocked:
        Salesforce(username=creds.username, password=creds.password + creds.security_token,
                   consumer_key=creds.consumer_key, consumer_secret=creds.consumer_secret,
                   session=client_session(sandbox.server))
    # Blocked by default since Summer '23, and indistinguishable from a wrong password.
    assert (blocked.value.code, blocked.value.auth_message) == ("invalid_grant", "authentication failure")
    creds.username_password_flow = True
    sf = Salesforce(username=creds.username, password=creds.password + creds.security_token,
                    consumer_key=creds.consumer_key, consumer_secret=creds.consumer_secret,
                    session=client_session(sandbox.server))
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 300
    with pytest.raises(SalesforceAuthenticationFailed) as exc:
        Salesforce(username=creds.username, password="nope", consumer_key=creds.consumer_key,
                   consumer_secret=creds.consumer_secret, session=client_session(sandbox.server))
    assert (exc.value.code, exc.value.auth_message) == ("invalid_grant", "authentication failure")


def _token(box: Sandbox, host: str = "clm-sandbox.my.salesforce.com", auth: tuple[str, str] | None = None,
           **form: str) -> tuple[int, dict[str, Any]]:
    response = client_session(box.server).post(f"https://{host}/services/oauth2/token", data=form, auth=auth)
    return response.status_code, response.json()


def test_client_credentials_grant(sandbox: Sandbox) -> None:
    creds = sandbox.org.credentials
    sf = Salesforce(consumer_key=creds.consumer_key, consumer_secret=creds.consumer_secret,
                    domain="clm-sandbox.my", session=client_session(sandbox.server))
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 300
    status, body = _token(sandbox, grant_type="client_credentials", client_id=creds.consumer_key,
                          client_secret=creds.consumer_secret)  # form fields instead of Basic work as well
    assert status == 200 and "refresh_token" not in body and body["instance_url"] == sandbox.server.url
    assert _token(sandbox, "login.salesforce.com", (creds.consumer_key, creds.consumer_secret),
                  grant_type="client_credentials") == (
        400, {"error": "invalid_grant", "error_description": "request not supported on this domain"})
    assert _token(sandbox, auth=(creds.consumer_key, "wrong"), grant_type="client_credentials") == (
        400, {"error": "invalid_client", "error_description": "invalid client credentials"})
    creds.client_credentials_run_as = False
    assert _token(sandbox, auth=(creds.consumer_key, creds.consumer_secret), grant_type="client_credentials") == (
        400, {"error": "invalid_grant", "error_description": "no client credentials user enabled"})


def test_refresh_token_grant(sandbox: Sandbox) -> None:
    creds = sandbox.org.credentials
    form = {"grant_type": "refresh_token", "refresh_token": creds.refresh_token, "client_id": creds.consumer_key}
    status, body = _token(sandbox, "login.salesforce.com", client_secret=creds.consumer_secret, **form)
    assert status == 200 and "refresh_token" not in body, "no new refresh token without rotation"
    sf = Salesforce(instance_url=body["instance_url"], session_id=body["access_token"],
                    session=client_session(sandbox.server))
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 300
    assert _token(sandbox, **form) == (
        400, {"error": "invalid_client", "error_description": "invalid client credentials"}), "secret required"
    assert _token(sandbox, client_secret=creds.consumer_secret, **{**form, "client_id": "other"}) == (
        400, {"error": "invalid_client_id", "error_description": "client identifier invalid"})
    sandbox.org.revoke_refresh_tokens()
    assert _token(sandbox, client_secret=creds.consumer_secret, **form) == (
        400, {"error": "invalid_grant", "error_description": "expired access/refresh token"})


def test_refresh_token_rotation_replaces_the_token(sandbox: Sandbox) -> None:
    creds = sandbox.org.credentials
    creds.rotate_refresh_tokens = True
    first = creds.refresh_token
    form = {"grant_type": "refresh_token", "client_id": creds.consumer_key, "client_secret": creds.consumer_secret}
    status, body = _token(sandbox, refresh_token=first, **form)
    assert status == 200 and body["refresh_token"] != first
    assert _token(sandbox, refresh_token=first, **form)[1]["error_description"] == "expired access/refresh token"
    assert _token(sandbox, refresh_token=body["refresh_token"], **form)[0] == 200


def _key_and_certificate() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clm connected app")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return pem_key, cert.public_bytes(serialization.Encoding.PEM)


def test_jwt_bearer_grant_checks_the_signature(shared_server: tuple[Any, Switch, Any]) -> None:
    key, certificate = _key_and_certificate()
    other_key, _ = _key_and_certificate()
    box = plug(shared_server, contacts=3, deals=0, credentials=Credentials(jwt_certificate=certificate))
    creds = box.org.credentials
    sf = Salesforce(username=creds.username, consumer_key=creds.consumer_key, privatekey=key.decode(),
                    session=client_session(box.server))
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 3
    with pytest.raises(SalesforceAuthenticationFailed) as exc:
        Salesforce(username=creds.username, consumer_key=creds.consumer_key, privatekey=other_key.decode(),
                   session=client_session(box.server))
    assert exc.value.code == "invalid_grant"
    with pytest.raises(SalesforceAuthenticationFailed) as wrong_app:
        Salesforce(username=creds.username, consumer_key="someone-else", privatekey=key.decode(),
                   session=client_session(box.server))
    assert (wrong_app.value.code, wrong_app.value.auth_message) == ("invalid_client_id", "client identifier invalid")
    # The audience is the login server even when the token request goes to the My Domain; the My Domain as
    # audience is refused.
    sf = Salesforce(username=creds.username, consumer_key=creds.consumer_key, privatekey=key.decode(),
                    domain="login", instance_url="clm-sandbox.my", session=client_session(box.server))
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 3
    with pytest.raises(SalesforceAuthenticationFailed) as my_domain:
        Salesforce(username=creds.username, consumer_key=creds.consumer_key, privatekey=key.decode(),
                   domain="clm-sandbox.my", session=client_session(box.server))
    assert (my_domain.value.code, my_domain.value.auth_message) == ("invalid_grant", "audience is invalid")


def test_daily_limit_and_usage_header(shared_server: tuple[Any, Switch, Any]) -> None:
    box = plug(shared_server, contacts=3, deals=0, daily_api_limit=5)
    sf = box.client()
    for used in range(1, 6):
        sf.query("SELECT Id FROM Contact")
        assert sf.api_usage["api-usage"] == (used, 5)
    with pytest.raises(SalesforceRefusedRequest) as exc:
        sf.query("SELECT Id FROM Contact")
    assert exc.value.status == 403
    assert exc.value.content == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    box.org.set_api_usage(0)
    assert sf.limits()["DailyApiRequests"] == {"Max": 5, "Remaining": 4}


def test_who_am_i_and_versions(sandbox: Sandbox, sf: Salesforce) -> None:
    me = sf.oauth2("userinfo")
    assert me is not None and me["user_id"] == sandbox.org.store.org.user_id
    assert me["organization_id"].startswith("00D")
    assert sf.restful("chatter/users/me")["username"] == sandbox.org.credentials.username  # type: ignore[index]
    session = client_session(sandbox.server)
    versions = session.get(f"{sandbox.server.url}/services/data/").json()
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in versions
    assert versions[-1] == {"label": "Winter '27", "url": "/services/data/v68.0", "version": "68.0"}
    old = Salesforce(instance_url=sandbox.server.url, session_id=sandbox.org.session_id, version="40.0",
                     session=client_session(sandbox.server))
    with pytest.raises(SalesforceResourceNotFound):
        old.query("SELECT Id FROM Contact")
    newer = sandbox.client(version="60.0")
    assert newer.query("SELECT COUNT() FROM Contact")["totalSize"] == 300


def test_describe_global_and_object(sf: Salesforce) -> None:
    names = {o["name"]: o for o in sf.describe()["sobjects"]}  # type: ignore[index]
    assert {n: names[n]["keyPrefix"] for n in ("Contact", "Lead", "Account", "Opportunity",
                                               "OpportunityContactRole")} == {
        "Contact": "003", "Lead": "00Q", "Account": "001", "Opportunity": "006", "OpportunityContactRole": "00K"}
    described = sf.Opportunity.describe()
    fields = {f["name"]: f for f in described["fields"]}
    assert fields["Amount"]["type"] == "currency" and (fields["Amount"]["precision"], fields["Amount"]["scale"]) == (
        18, 2)
    assert fields["CloseDate"]["type"] == "date" and fields["IsWon"]["updateable"] is False
    assert "Closed Won" in [v["value"] for v in fields["StageName"]["picklistValues"]]
    assert fields["AccountId"]["referenceTo"] == ["Account"] and fields["AccountId"]["relationshipName"] == "Account"
    assert {c["relationshipName"] for c in described["childRelationships"]} == {"OpportunityContactRoles"}
