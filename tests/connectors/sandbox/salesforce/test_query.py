"""SOQL through simple-salesforce: paging, query locators, the supported subset and Salesforce's errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from tests.connectors.sandbox.salesforce.conftest import T0, Sandbox


def error_of(exc: pytest.ExceptionInfo[SalesforceMalformedRequest]) -> dict[str, str]:
    content = exc.value.content
    assert isinstance(content, list) and len(content) == 1
    return dict(content[0])


# ---------------------------------------------------------------- paging


def test_pages_of_2000_with_query_more(big: Sandbox) -> None:
    sf = big.client()
    first = sf.query("SELECT Id, Email FROM Contact")
    assert first["totalSize"] == 4500 and first["done"] is False and len(first["records"]) == 2000
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    assert first["nextRecordsUrl"].endswith("-2000")
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert len(second["records"]) == 2000 and second["nextRecordsUrl"].endswith("-4000")
    third = sf.query_more(second["nextRecordsUrl"], identifier_is_url=True)
    assert len(third["records"]) == 500 and third["done"] is True and "nextRecordsUrl" not in third
    ids = [r["Id"] for page in (first, second, third) for r in page["records"]]
    assert len(set(ids)) == 4500


def test_query_all_and_iter_collect_every_page(big: Sandbox) -> None:
    sf = big.client()
    assert len(sf.query_all("SELECT Id FROM Contact")["records"]) == 4500
    assert sum(1 for _ in sf.query_all_iter("SELECT Id, SystemModstamp FROM Contact ORDER BY SystemModstamp")) == 4500
    assert big.org.request_counts["GET /query/{locator}"] >= 4


@pytest.mark.parametrize(("asked", "page"), [(500, 500), (50, 200), (5000, 2000), (1999, 1999)])
def test_batch_size_header_is_honoured_within_200_to_2000(big: Sandbox, asked: int, page: int) -> None:
    sf = big.client()
    result = sf.query("SELECT Id FROM Contact", headers={"Sforce-Query-Options": f"batchSize={asked}"})
    assert len(result["records"]) == page


def test_locator_can_be_read_again_and_is_released_after_ten_cursors(big: Sandbox) -> None:
    sf = big.client()
    first = sf.query("SELECT Id FROM Contact")
    again = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert again == sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    for _ in range(10):  # ten newer cursors release the oldest
        sf.query("SELECT Id FROM Contact")
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert error_of(exc)["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_query_all_includes_recycle_bin(sandbox: Sandbox, sf: Salesforce) -> None:
    victim = sandbox.contact_ids()[0]
    sandbox.org.delete(victim)
    assert sf.query(f"SELECT Id FROM Contact WHERE Id = '{victim}'")["totalSize"] == 0
    rows = sf.query_all(f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{victim}'", include_deleted=True)
    assert rows["records"][0]["IsDeleted"] is True


# ---------------------------------------------------------------- the SOQL subset


def test_where_and_or_parentheses_in_like(sandbox: Sandbox, sf: Salesforce) -> None:
    rows = sf.query_all("SELECT Id, Email, Newsletter__c FROM Contact WHERE (Email LIKE 'FIRST1%' OR Email LIKE "
                        "'%@example3.com') AND Newsletter__c = true")["records"]
    assert rows and all(r["Newsletter__c"] is True for r in rows)
    assert all(r["Email"].startswith("first1") or r["Email"].endswith("@example3.com") for r in rows)
    ids = sandbox.contact_ids()[:3]
    listed = sf.query("SELECT Id FROM Contact WHERE Id IN ('" + "','".join(ids) + "')")["records"]
    assert {r["Id"] for r in listed} == set(ids)
    not_listed = sf.query("SELECT COUNT() FROM Contact WHERE Id NOT IN ('" + "','".join(ids) + "')")
    assert not_listed["totalSize"] == 297


def test_text_comparison_is_case_insensitive_and_not_equal_matches_nulls(sf: Salesforce) -> None:
    assert sf.query("SELECT COUNT() FROM Contact WHERE Email = 'FIRST5.LAST5@EXAMPLE5.COM'")["totalSize"] == 1
    assert sf.query("SELECT COUNT() FROM Contact WHERE MobilePhone != 'x'")["totalSize"] == 300


def test_datetime_and_date_literals(sandbox: Sandbox, sf: Salesforce) -> None:
    after = (T0 + timedelta(hours=100)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = sf.query(f"SELECT COUNT() FROM Contact WHERE CreatedDate > {after}")
    assert result["totalSize"] == 199
    assert sf.query("SELECT COUNT() FROM Opportunity WHERE CloseDate >= 2024-03-01")["totalSize"] > 0
    sandbox.org.edit(sandbox.contact_ids()[0], {"Title": "CTO"})
    assert sf.query("SELECT COUNT() FROM Contact WHERE SystemModstamp = LAST_N_DAYS:1")["totalSize"] == 1
    assert sf.query("SELECT COUNT() FROM Contact WHERE LastModifiedDate = TODAY")["totalSize"] == 1


def test_order_by_several_keys_limit_offset(sf: Salesforce) -> None:
    rows = sf.query("SELECT Id, Engagement_Score__c, CreatedDate FROM Contact "
                    "ORDER BY Engagement_Score__c DESC, CreatedDate ASC LIMIT 5 OFFSET 1")["records"]
    assert len(rows) == 5
    scores = [r["Engagement_Score__c"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert rows[0]["Engagement_Score__c"] == 24.75


def test_relationship_fields_and_child_subquery(sandbox: Sandbox, sf: Salesforce) -> None:
    roles = sf.query_all("SELECT Id, ContactId, IsPrimary, Role, Opportunity.Amount, Opportunity.StageName, "
                         "Opportunity.IsWon, Contact.Email FROM OpportunityContactRole")["records"]
    assert len(roles) == 240
    first = roles[0]
    assert first["Opportunity"]["attributes"]["type"] == "Opportunity"
    assert first["Opportunity"]["StageName"] == "Closed Won" and first["Opportunity"]["IsWon"] is True
    assert first["Contact"]["Email"].startswith("first0.")
    deals = sf.query("SELECT Id, (SELECT ContactId, IsPrimary FROM OpportunityContactRoles ORDER BY IsPrimary DESC) "
                     "FROM Opportunity LIMIT 3")["records"]
    children = deals[0]["OpportunityContactRoles"]
    assert children["totalSize"] == 2 and children["records"][0]["IsPrimary"] is True
    accounts = sf.query("SELECT Name, Account.Name FROM Contact WHERE Account.Name = 'Company 3' LIMIT 1")
    assert accounts["records"][0]["Account"]["Name"] == "Company 3"


def test_count(sf: Salesforce) -> None:
    result = sf.query("SELECT COUNT() FROM Opportunity WHERE IsClosed = true AND IsWon = false")
    assert result == {"totalSize": 40, "done": True, "records": []}


def test_organization_and_is_sandbox(sf: Salesforce) -> None:
    assert sf.is_sandbox() is False


# ---------------------------------------------------------------- errors as Salesforce sends them


@pytest.mark.parametrize(("soql", "code", "fragment"), [
    ("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY", "unexpected token: <EOF>"),
    ("SELECT Id FROM Contact WHERE Email = 'a' AND LastName = 'b' OR FirstName = 'c'", "MALFORMED_QUERY",
     "unexpected token: OR"),
    ("SELECT Id, Nope__c FROM Contact", "INVALID_FIELD", "No such column 'Nope__c' on entity 'Contact'"),
    ("SELECT Id FROM Contactz", "INVALID_TYPE", "sObject type 'Contactz' is not supported"),
    ("SELECT Id FROM Contact WHERE CreatedDate > '2024-01-01T00:00:00Z'", "INVALID_FIELD",
     "must be of type dateTime and should not be enclosed in quotes"),
    ("SELECT Id FROM Contact WHERE CreatedDate > 2024-01-01", "INVALID_FIELD", "must be of type dateTime"),
    ("SELECT Id FROM Contact WHERE Email = 5", "INVALID_FIELD", "should be enclosed in quotes"),
    ("SELECT Id FROM Contact WHERE Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: abc"),
    ("SELECT Id FROM Contact WHERE Description = 'x'", "INVALID_FIELD", "can not be filtered"),
    ("SELECT Id, Nope.Name FROM Contact", "INVALID_FIELD", "Didn't understand relationship 'Nope'"),
    ("SELECT Id FROM Contact LIMIT 5 OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset"),
])
def test_query_errors(sf: Salesforce, soql: str, code: str, fragment: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query(soql)
    error = error_of(exc)
    assert exc.value.status == 400
    assert error["errorCode"] == code
    assert fragment in error["message"]
    if code in ("MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE"):
        assert "ERROR at Row:1:Column:" in error["message"]
