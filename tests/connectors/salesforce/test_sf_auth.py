"""Logins that still work in 2026: client credentials and refresh token on an org that refuses SOAP login(),
re-login after expiry with each, clear messages where a login is refused, and the JWT audience."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.sandbox.salesforce import Credentials
from core.config import SalesforceConfig
from core.errors import AuthError
from tests.connectors.salesforce.conftest import Org, generated, pull_all

TOKEN = "POST /services/oauth2/token"
SOAP = "POST /services/Soap/u"


@pytest.fixture
def new_org(tls_dir: Path) -> Iterator[Org]:
    """An org as created today: SOAP login() and the OAuth username-password flow are off (the defaults)."""
    org = generated(60, tls_dir, deals=False)
    yield org
    org.stop()
    assert org.emulator.internal_errors == []


@pytest.mark.parametrize("auth", ["client_credentials", "refresh_token"])
def test_an_oauth_login_on_an_org_that_refuses_soap_pulls_writes_and_logs_in_again_after_expiry(
        new_org: Org, auth: str, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = new_org.connector(auth=auth, monkeypatch=monkeypatch)
    pages, _ = pull_all(conn, None)
    assert len({c.id for p in pages for c in p.contacts}) == 60
    assert conn.client.logins == 1 and new_org.emulator.request_counts[TOKEN] == 1
    new_org.emulator.expire_sessions()  # the session timed out (2 hours of inactivity) or was revoked
    pages, _ = pull_all(conn, None)
    assert len({c.id for p in pages for c in p.contacts}) == 60
    assert conn.client.logins == 2 and new_org.emulator.request_counts[TOKEN] == 2
    assert new_org.emulator.request_counts[SOAP] == 0


def test_refresh_token_rotation_uses_the_new_refresh_token_for_the_next_login(
        tls_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    org = generated(20, tls_dir, deals=False, credentials=Credentials(rotate_refresh_tokens=True))
    try:
        conn = org.connector(auth="refresh_token", monkeypatch=monkeypatch)
        for _ in range(3):
            org.emulator.expire_sessions()
            pages, _ = pull_all(conn, None)
            assert len({c.id for p in pages for c in p.contacts}) == 20
        assert conn.client.logins == 3
    finally:
        org.stop()


def test_a_revoked_refresh_token_is_an_auth_error_that_says_what_to_do(
        new_org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = new_org.connector(auth="refresh_token", monkeypatch=monkeypatch)
    conn.client.read_limits()
    new_org.emulator.revoke_refresh_tokens()
    new_org.emulator.expire_sessions()
    with pytest.raises(AuthError, match="expired access/refresh token") as info:
        conn.client.read_limits()
    assert info.value.hint and "salesforce.refresh_token_env" in info.value.hint
    assert new_org.emulator.credentials.refresh_token not in str(info.value.message) + info.value.hint


def test_client_credentials_on_the_generic_login_host_or_without_a_run_as_user_say_how_to_fix_it(
        new_org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = new_org.connector(auth="client_credentials", monkeypatch=monkeypatch)
    monkeypatch.setenv("SF_TEST_MY_DOMAIN", "https://login.salesforce.com")
    with pytest.raises(AuthError, match="request not supported on this domain") as generic:
        conn.client.read_limits()
    assert generic.value.hint and "my.salesforce.com" in generic.value.hint
    monkeypatch.setenv("SF_TEST_MY_DOMAIN", new_org.server.url)
    new_org.emulator.credentials.client_credentials_run_as = False
    with pytest.raises(AuthError, match="no client credentials user enabled") as no_user:
        new_org.connector(auth="client_credentials", monkeypatch=monkeypatch).client.read_limits()
    assert no_user.value.hint and "Run As user" in no_user.value.hint
    secret = new_org.emulator.credentials.consumer_secret
    assert secret not in no_user.value.message + no_user.value.hint


def test_password_login_on_an_org_that_refuses_soap_says_to_switch_to_client_credentials(
        new_org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AuthError, match="SOAP API login\\(\\) is disabled or retired") as info:
        new_org.connector(auth="password", monkeypatch=monkeypatch).client.read_limits()
    assert "disabled by default in this org" in info.value.message  # Salesforce's own words are kept
    assert info.value.hint and 'auth = "client_credentials"' in info.value.hint
    assert 'consumer_secret_env = "SF_CONSUMER_SECRET"' in info.value.hint
    assert new_org.emulator.request_counts[SOAP] == 1, "a refused login is not retried"


def test_password_login_still_works_where_the_org_allows_soap_whatever_the_rest_api_version(
        new_org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    new_org.emulator.credentials.soap_login = True  # an org created before Winter '26
    conn = new_org.connector(auth="password", monkeypatch=monkeypatch, api_version="66.0")
    pages, _ = pull_all(conn, None)
    assert len({c.id for p in pages for c in p.contacts}) == 60 and conn.client.logins == 1


def test_token_auth_that_expires_points_to_a_login_that_can_renew_itself(new_org: Org) -> None:
    conn = new_org.connector()
    conn.client.read_limits()
    new_org.emulator.expire_sessions()
    with pytest.raises(AuthError, match="INVALID_SESSION_ID") as info:
        conn.client.read_limits()
    assert info.value.hint and "cannot be refreshed" in info.value.hint
    assert 'auth = "client_credentials"' in info.value.hint


def test_jwt_audience_must_be_login_or_test_not_the_my_domain() -> None:
    jwt = {"auth": "jwt", "username_env": "U", "consumer_key_env": "K", "private_key_file_env": "F"}
    with pytest.raises(ValidationError, match="audience is invalid"):
        SalesforceConfig(**jwt, domain="acme.my")
    assert SalesforceConfig(**jwt, domain="test").domain == "test"
