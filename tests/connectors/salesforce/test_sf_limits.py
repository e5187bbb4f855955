"""The org's daily API allowance through the shared limiter (``Sforce-Limit-Info`` and the ``limits`` resource,
keeping ``api_reserve_fraction`` for other integrations), the daily-limit 403, and password and JWT logins."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from connectors.base import FieldUpdate, WriteResult
from connectors.sandbox.faults import FaultRule
from connectors.sandbox.salesforce import Credentials
from core.errors import AuthError, DailyLimitReached
from tests.connectors.salesforce.conftest import DATA, SPECS, Org, generated, pull_all

COLLECTIONS = f"{DATA}/composite/sobjects"
PATCH = "PATCH /composite/sobjects"
SCORE = "CLM_Lead_Score__c"


def updates(ids: Sequence[str], score: float = 10.0) -> list[FieldUpdate]:
    return [FieldUpdate(i, {"lead_score": score + n % 50}) for n, i in enumerate(ids)]


def score(org: Org, record_id: str) -> Any:
    record = org.emulator.record(record_id)
    assert record is not None
    return record.get(SCORE)


def written_ids(org: Org) -> set[str]:
    """Records whose score was written through the API."""
    with org.emulator.store.lock:
        return {w.record_id for w in org.emulator.store.write_log if w.source == "api" and w.field == SCORE}


def test_a_long_write_run_stops_before_the_reserve_and_reports_what_it_wrote(tls_dir: Path) -> None:
    org = generated(5_000, tls_dir, deals=False, daily_api_limit=10_000, fault_seed=2)
    try:
        conn = org.connector(batch_size=20, concurrency=4, reserve=0.2)
        org.admin_ensure(conn)
        org.emulator.reset_counters()
        # 150 requests left before the 2,000 kept for others; 250 batches to write. Locks make some batches need
        # a second request, so the limit can fall between a batch's first answer and its retry.
        org.emulator.set_api_usage(7_850)
        org.emulator.add_fault(FaultRule(kind="lock_row", path_prefix=COLLECTIONS, rate=0.05))
        batch = updates(org.ids("Contact"))
        chunks = [batch[i:i + 20] for i in range(0, len(batch), 20)]
        answered: dict[int, list[WriteResult]] = {}
        stopped: list[int] = []
        lock = threading.Lock()

        def send(index: int) -> list[WriteResult]:
            try:
                results = conn.write(chunks[index])
            except DailyLimitReached:
                with lock:
                    stopped.append(index)
                raise
            with lock:
                answered[index] = results
            return results

        reported: list[WriteResult] = []
        yielded = 0
        with pytest.raises(DailyLimitReached) as info:
            for results in conn.transport.map(send, range(len(chunks))):  # as the sync runner writes
                reported.extend(results)
                yielded += 1
    finally:
        org.stop()
    assert org.emulator.internal_errors == []
    # Salesforce's allowance is a rolling 24 hours: there is no reset time to promise.
    assert info.value.resets_at is None and "stopped cleanly" in (info.value.hint or "")
    assert "rolling 24 hours" in (info.value.hint or "")
    # The reserve is untouched, but for requests already in flight when the limit was reached; and the run did
    # use what it was allowed.
    assert 8_000 <= org.emulator.api_usage <= 8_000 + conn.transport.concurrency
    assert org.emulator.request_counts[PATCH] == org.emulator.api_usage - 7_850
    # Every write that happened is in a batch's results, with its value: a batch the limit stopped before it
    # sent anything raised, one it cut short returned what it wrote and the rest as transient.
    written = written_ids(org)
    ok = {r.record_id for results in answered.values() for r in results if r.ok}
    assert written == ok and len(written) > 1_000
    assert not any(u.record_id in written for index in stopped for u in chunks[index])
    for results in answered.values():
        for result in results:
            if result.ok:
                assert score(org, result.record_id) is not None
            else:
                assert result.transient and result.record_id not in written
    # The sync runner settles what the map yields: all of it but batches still in flight when the stop surfaced.
    assert {r.record_id for r in reported} <= {r.record_id for rs in answered.values() for r in rs}
    assert len(answered) - yielded <= 2 * conn.transport.concurrency
    assert org.emulator.max_writes_per_field() == 1


def test_a_batch_cut_short_by_the_limit_reports_what_it_wrote_and_the_next_one_sends_nothing(
        tls_dir: Path) -> None:
    org = generated(50, tls_dir, deals=False, daily_api_limit=1_000)
    try:
        conn = org.connector(concurrency=1, reserve=0.2)
        org.admin_ensure(conn)
        ids = org.ids("Contact")
        # The limits resource tells the limiter where the org stands before any write: one request left above
        # the 200 kept for others once the limits call itself is counted.
        org.emulator.set_api_usage(798)
        conn.client.read_limits()
        assert org.emulator.api_usage == 799
        org.emulator.add_fault(FaultRule(kind="lock_row", path_prefix=COLLECTIONS, count=1))
        results = conn.write(updates(ids[:5]))
        assert org.emulator.api_usage == 800
        assert [r.ok for r in results] == [False, True, True, True, True]
        assert results[0].transient and "daily API allowance" in (results[0].reason or "")
        assert written_ids(org) == set(ids[1:5])
        with pytest.raises(DailyLimitReached):
            conn.write(updates(ids[5:10]))
        assert org.emulator.api_usage == 800 and org.emulator.request_counts[PATCH] == 1
    finally:
        org.stop()


def test_the_usage_header_alone_feeds_the_limiter_and_check_reports_the_reserve(tls_dir: Path) -> None:
    org = generated(100, tls_dir, deals=False, daily_api_limit=10_000)
    try:
        conn = org.connector(concurrency=1, reserve=0.2)
        org.admin_ensure(conn)
        fresh = org.connector(concurrency=1, reserve=0.2)  # has seen no limits resource, no header
        ids = org.ids("Contact")
        org.emulator.set_api_usage(7_990)
        sent = 0
        with pytest.raises(DailyLimitReached):
            for n in range(20):
                assert all(r.ok for r in fresh.write(updates(ids[n:n + 1])))
                sent += 1
        # The first answer's Sforce-Limit-Info (7,991 of 10,000) set both the budget and the reserve (2,000).
        assert sent == 10 and org.emulator.api_usage == 8_000
        assert fresh.transport.limiter.limits.daily_reserve == 2_000

        # check reads the limits resource, says the allowance is down to the reserve, and spends nothing more.
        checks = conn.check(SPECS)
        assert [c.name for c in checks] == ["Salesforce reachable, credentials accepted",
                                            "daily API allowance above the reserve"]
        assert checks[0].ok and "API requests today: 8,001 of 10,000" in checks[0].detail
        assert not checks[1].ok and checks[1].detail.startswith("1,999 requests left, 2,000 kept")
        assert "api_reserve_fraction" in checks[1].fix
        assert org.emulator.api_usage == 8_001
    finally:
        org.stop()


def test_the_daily_limit_403_stops_the_run_without_retrying(small: Org) -> None:
    conn = small.connector()
    small.admin_ensure(conn)
    small.emulator.reset_counters()
    limit = small.emulator.add_fault(FaultRule(kind="daily_limit", path_prefix=COLLECTIONS))
    with pytest.raises(DailyLimitReached) as info:
        conn.write(updates(small.ids("Contact")[:10]))
    assert "TotalRequests Limit exceeded" in info.value.message and "resume" in (info.value.hint or "")
    assert info.value.resets_at is None and "rolling 24 hours (not from midnight)" in (info.value.hint or "")
    assert limit.fired == 1 and small.emulator.request_counts[PATCH] == 1, "not retried"
    assert conn.transport.stats.retries == 0 and small.emulator.total_writes() == 0


def test_password_login_pulls_writes_and_logs_in_again_after_expiry(
        tls_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An org created before Winter '26 (SOAP login() still allowed), and a REST version that has no login().
    org = generated(100, tls_dir, deals=False, credentials=Credentials(soap_login=True))
    try:
        conn = org.connector(auth="password", monkeypatch=monkeypatch, api_version="66.0")
        pages, _ = pull_all(conn, None)
        assert len({c.id for p in pages for c in p.contacts}) == 100
        assert conn.client.logins == 1 and org.emulator.request_counts["POST /services/Soap/u"] == 1
        org.admin_ensure(conn)
        org.emulator.expire_sessions()
        ids = org.ids("Contact")
        assert all(r.ok for r in conn.write(updates(ids[:10])))
        assert conn.client.logins == 2 and score(org, ids[0]) == 10.0
    finally:
        org.stop()


def _key_and_certificate() -> tuple[bytes, bytes]:
    """A connected app's key pair: the PEM private key we sign with, the certificate Salesforce holds."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clm connected app")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return pem, cert.public_bytes(serialization.Encoding.PEM)


def test_jwt_login_works_logs_in_again_and_a_wrong_key_is_an_auth_error(
        tls_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, certificate = _key_and_certificate()
    other, _ = _key_and_certificate()
    (tmp_path / "app.pem").write_bytes(key)
    (tmp_path / "other.pem").write_bytes(other)
    # With the certificate the sandbox verifies the assertion's signature, as Salesforce does.
    org = generated(30, tls_dir, deals=False, credentials=Credentials(jwt_certificate=certificate))
    try:
        creds = org.emulator.credentials
        monkeypatch.setenv("SF_TEST_USER", creds.username)
        monkeypatch.setenv("SF_TEST_CONSUMER_KEY", creds.consumer_key)
        monkeypatch.setenv("SF_TEST_KEY_FILE", str(tmp_path / "app.pem"))
        conn = org.connector(auth="jwt")
        assert all(c.ok for c in conn.check(SPECS)[:2])
        org.admin_ensure(conn)
        org.emulator.expire_sessions()
        ids = org.ids("Contact")
        assert all(r.ok for r in conn.write(updates(ids[:3])))
        assert conn.client.logins == 2 and org.emulator.request_counts["POST /services/oauth2/token"] == 2

        monkeypatch.setenv("SF_TEST_KEY_FILE", str(tmp_path / "other.pem"))
        with pytest.raises(AuthError, match="refused the jwt login") as info:
            org.connector(auth="jwt").write(updates(ids[:1]))
        assert info.value.hint and "certificate matches the private key" in info.value.hint
    finally:
        org.stop()
