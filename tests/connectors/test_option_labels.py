"""CRM-native option labels: HubSpot enumeration options read "Marketing qualified" while the value stored and
written stays ``marketing_qualified``; read back through hubspot-api-client from the sandbox over real HTTP
(Salesforce picklists: tests/connectors/salesforce/test_sf_option_labels.py)."""

from __future__ import annotations

from hubspot import HubSpot
from hubspot.crm.properties import OptionInput, PropertyUpdate

from connectors.base import FieldUpdate
from connectors.sandbox.hubspot import RateLimits
from core.fields import option_label
from core.models import FieldSpec, FieldType
from tests.connectors.test_hubspot import SPECS, connector, seeded

STAGES = ("subscriber", "marketing_qualified", "at_risk", "repeat_customer")


def test_option_labels_read_as_people_write_them() -> None:
    assert [option_label(v) for v in STAGES] == ["Subscriber", "Marketing qualified", "At risk", "Repeat customer"]
    assert [option_label(v) for v in ("true", "false", "A", "hand_to_sales", "VIP_tier")] == [
        "Yes", "No", "A", "Hand to sales", "VIP tier"]


def _options(client: HubSpot, name: str) -> dict[str, str]:
    prop = client.crm.properties.core_api.get_by_name("contacts", name)
    return {o.value: o.label for o in prop.options}


def test_hubspot_options_carry_labels_and_old_raw_labels_are_fixed() -> None:
    server, emulator, ids = seeded(3, RateLimits.off())
    try:
        conn = connector(server, emulator)
        specs = [s.model_copy(update={"options": STAGES}) if s.name == "stage" else s for s in SPECS]
        flag = FieldSpec(name="vip", type=FieldType.BOOL, label="CLM VIP", description="x")
        conn.ensure_fields([*specs, flag])
        client = HubSpot(access_token=emulator.token, host=server.url)
        assert _options(client, "clm_stage") == {v: option_label(v) for v in STAGES}
        assert _options(client, "clm_grade") == {g: g for g in "ABCD"}
        assert _options(client, "clm_vip") == {"true": "Yes", "false": "No"}  # as HubSpot labels checkboxes
        # The value written is still ours.
        assert all(r.ok for r in conn.write([FieldUpdate(ids[0], {"stage": "marketing_qualified"})]))
        assert (emulator.record("contacts", ids[0]) or {})["properties"]["clm_stage"] == "marketing_qualified"

        # A property an earlier version created (labels = raw values), one label changed by a person since.
        old = [OptionInput(label=v, value=v, display_order=i, hidden=False) for i, v in enumerate(STAGES)]
        old[2] = OptionInput(label="Needs love", value="at_risk", display_order=2, hidden=False)
        client.crm.properties.core_api.update("contacts", "clm_stage", PropertyUpdate(options=old))
        status = next(s for s in conn.ensure_fields(specs) if s.name == "stage")
        assert status.action == "updated" and "labelled options" in status.detail
        assert _options(client, "clm_stage") == {**{v: option_label(v) for v in STAGES}, "at_risk": "Needs love"}
        assert next(s for s in conn.ensure_fields(specs) if s.name == "stage").action == "exists"
    finally:
        server.stop()
