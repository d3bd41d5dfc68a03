"""The headers the console shows for an attempt: every contract's names, never a secret."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.catalogue import default_catalogue
from app.console.headers import shown_headers
from tests.unit.conftest import T0

#: Per contract: a header whose value depends on the secret, and one that does not.
CONTRACTS = [
    ("crewpass", None, "X-CrewPass-Signature", "X-CrewPass-Event-Type"),
    ("crewship", None, "X-Crewship-Signature", "X-Crewship-Event"),
    ("wallet-crew", None, "x-neostore-signature", "x-neostore-eventname"),
    ("standard-webhooks", None, "webhook-signature", "webhook-id"),
    ("cr3dentials", "X-Partner-Key", "X-Partner-Key", "Content-Type"),
]


def endpoint(contract: str, auth_header: str | None, *, rotating: bool = False,
             headers: dict[str, str] | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        contract=contract, secret="whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtMTIzNDU2Nzg=",
        previous_secret="whsec_cHJldmlvdXMtcHJldmlvdXMtcHJldmlvdXMtMTIz" if rotating else None,
        previous_secret_expires_at=T0.replace(year=2031) if rotating else None,
        auth_header=auth_header, headers=headers or {})


EVENT = SimpleNamespace(id="evt_1", event_type="crew.status.changed", tenant_id="tnt_1",
                        occurred_at=T0, payload={"crew_id": "c1"})


@pytest.mark.parametrize(("contract", "auth", "secret_header", "plain_header"), CONTRACTS)
def test_secret_dependent_headers_are_withheld_and_the_others_shown(
    contract: str, auth: str | None, secret_header: str, plain_header: str
) -> None:
    shown = shown_headers(endpoint(contract, auth, rotating=True), EVENT, "dlv_1",
                          default_catalogue([]), T0)
    assert shown is not None
    values = {h.name: h.value for h in shown}
    assert values[secret_header] is None
    assert values[plain_header] is not None
    if contract != "standard-webhooks":  # it carries both signatures in one header
        assert any(name.lower().endswith("-next") and value is None for name, value in values.items())


def test_static_headers_are_shown_unless_their_name_says_credential() -> None:
    shown = shown_headers(endpoint("crewpass", None, headers={
        "X-Route": "eu", "Authorization": "Bearer abc", "X-Upstream-Token": "t"}),
        EVENT, "dlv_1", default_catalogue([]), T0)
    assert shown is not None
    values = {h.name: h.value for h in shown}
    assert values["X-Route"] == "eu"
    assert values["Authorization"] is None and values["X-Upstream-Token"] is None
