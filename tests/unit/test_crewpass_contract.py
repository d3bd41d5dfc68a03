"""The CrewPass wire contract, pinned by a golden vector computed outside Hookline's code."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.contracts import DEFAULT_CONTRACT, contract_names, get_contract
from app.contracts.base import AttemptContext, EventView, RenderedRequest, SigningKeys
from app.contracts.crewpass import CrewPassContract
from app.errors import InputError
from app.verify import BadSignature, MissingHeader, StaleTimestamp, verify

SECRET = "cpsk_test_secret"
TIMESTAMP = 1780912800
EVENT = EventView(
    id="evt_01TEST",
    type="crew.document.processed",
    tenant_id="prt_123",
    occurred_at=datetime(2026, 6, 8, 10, 0, 0, tzinfo=UTC),
    data={"crew_id": "crw_1", "status": "verified"},
)
#: The exact bytes the CrewPass documentation describes for EVENT.
GOLDEN_BODY = (
    b'{"schema_version":1,"event_id":"evt_01TEST","event_type":"crew.document.processed",'
    b'"occurred_at":"2026-06-08T10:00:00Z","partner_id":"prt_123",'
    b'"data":{"crew_id":"crw_1","status":"verified"}}'
)
#: hmac.new(b"cpsk_test_secret", b"1780912800." + GOLDEN_BODY, hashlib.sha256).hexdigest(),
#: computed once by hand and pasted here so any changed byte fails.
GOLDEN_SIGNATURE = "v1=d9d0c9fff27bd4065873e20b3cef6c07562190ef69168b3e7820f7cc71dbed79"

CONTRACT = CrewPassContract()


def render(delivery_id: str = "dlv_01TEST", timestamp: int = TIMESTAMP) -> RenderedRequest:
    return CONTRACT.render(EVENT, AttemptContext(delivery_id, SigningKeys(SECRET), timestamp))


def rendered_headers() -> dict[str, str]:
    return render().headers


class TestRender:
    """Rendering gives the documented body bytes and headers, byte for byte."""

    def test_the_body_is_the_golden_bytes(self) -> None:
        assert render().body == GOLDEN_BODY

    def test_the_signature_is_the_golden_vector(self) -> None:
        assert rendered_headers()["X-CrewPass-Signature"] == GOLDEN_SIGNATURE

    def test_all_five_crewpass_headers_carry_the_documented_values(self) -> None:
        headers = rendered_headers()
        crewpass = {k: v for k, v in headers.items() if k.startswith("X-CrewPass-")}
        assert crewpass == {
            "X-CrewPass-Event-Id": "evt_01TEST",
            "X-CrewPass-Event-Type": "crew.document.processed",
            "X-CrewPass-Timestamp": "1780912800",
            "X-CrewPass-Signature": GOLDEN_SIGNATURE,
            "X-CrewPass-Schema-Version": "1",
        }
        assert headers["Content-Type"] == "application/json"

    def test_the_delivery_id_does_not_change_the_bytes(self) -> None:
        first = render("dlv_A")
        second = render("dlv_B")
        assert first == second

    def test_a_later_timestamp_changes_the_signature_but_not_the_body(self) -> None:
        later = render(timestamp=TIMESTAMP + 1)
        assert later.body == GOLDEN_BODY
        assert later.headers["X-CrewPass-Timestamp"] == str(TIMESTAMP + 1)
        assert later.headers["X-CrewPass-Signature"] != GOLDEN_SIGNATURE

    @pytest.mark.parametrize(
        "occurred_at",
        [
            datetime(2026, 6, 8, 12, 0, 0, tzinfo=timezone(timedelta(hours=2))),
            datetime(2026, 6, 8, 10, 0, 0),
            datetime(2026, 6, 8, 10, 0, 0, 999_999, tzinfo=UTC),
        ],
        ids=["other-offset", "naive-is-utc", "microseconds-dropped"],
    )
    def test_occurred_at_is_sent_as_utc_whole_seconds(self, occurred_at: datetime) -> None:
        event = EventView(EVENT.id, EVENT.type, EVENT.tenant_id, occurred_at, EVENT.data)
        assert CONTRACT.body(event) == GOLDEN_BODY

    def test_non_ascii_data_is_sent_as_raw_utf8(self) -> None:
        event = EventView(EVENT.id, EVENT.type, EVENT.tenant_id, EVENT.occurred_at,
                          {"name": "Zoë"})
        assert b'"data":{"name":"Zo\xc3\xab"}' in CONTRACT.body(event)


class TestVerify:
    """The receiver-side verifier accepts exactly what was signed, within the tolerance."""

    def test_it_accepts_its_own_render(self) -> None:
        verify("crewpass", SECRET, rendered_headers(), GOLDEN_BODY, now=TIMESTAMP)  # raises if not

    @pytest.mark.parametrize("skew", [-300, 300])
    def test_it_accepts_a_timestamp_at_the_edge_of_the_tolerance(self, skew: int) -> None:
        verify("crewpass", SECRET, rendered_headers(), GOLDEN_BODY, now=TIMESTAMP + skew)

    @pytest.mark.parametrize("position", [0, 40, len(GOLDEN_BODY) - 1])
    def test_it_rejects_a_changed_body_byte(self, position: int) -> None:
        tampered = bytearray(GOLDEN_BODY)
        tampered[position] ^= 0x01
        with pytest.raises(BadSignature):
            verify("crewpass", SECRET, rendered_headers(), bytes(tampered), now=TIMESTAMP)

    def test_it_rejects_a_wrong_secret(self) -> None:
        with pytest.raises(BadSignature):
            verify("crewpass", "cpsk_other_secret", rendered_headers(), GOLDEN_BODY, now=TIMESTAMP)

    def test_it_rejects_a_replayed_signature_under_a_new_timestamp(self) -> None:
        headers = rendered_headers() | {"X-CrewPass-Timestamp": str(TIMESTAMP + 60)}
        with pytest.raises(BadSignature):
            verify("crewpass", SECRET, headers, GOLDEN_BODY, now=TIMESTAMP + 60)

    @pytest.mark.parametrize("skew", [301, -301, 3600])
    def test_it_rejects_a_timestamp_outside_the_tolerance(self, skew: int) -> None:
        with pytest.raises(StaleTimestamp):
            verify("crewpass", SECRET, rendered_headers(), GOLDEN_BODY, now=TIMESTAMP + skew)

    def test_a_custom_tolerance_is_honoured(self) -> None:
        with pytest.raises(StaleTimestamp):
            verify("crewpass", SECRET, rendered_headers(), GOLDEN_BODY, now=TIMESTAMP + 11,
                            tolerance=10)
        verify("crewpass", SECRET, rendered_headers(), GOLDEN_BODY, now=TIMESTAMP + 10,
                        tolerance=10)

    @pytest.mark.parametrize("missing", ["X-CrewPass-Timestamp", "X-CrewPass-Signature"])
    def test_it_rejects_a_missing_header(self, missing: str) -> None:
        headers = {k: v for k, v in rendered_headers().items() if k != missing}
        with pytest.raises(MissingHeader, match=f"missing header {missing}"):
            verify("crewpass", SECRET, headers, GOLDEN_BODY, now=TIMESTAMP)

    def test_it_rejects_a_timestamp_that_is_not_an_integer(self) -> None:
        headers = rendered_headers() | {"X-CrewPass-Timestamp": "soon"}
        with pytest.raises(StaleTimestamp, match="not unix seconds"):
            verify("crewpass", SECRET, headers, GOLDEN_BODY, now=TIMESTAMP)

    @pytest.mark.parametrize("case", [str.lower, str.upper], ids=["lower", "upper"])
    def test_headers_are_looked_up_case_insensitively(self, case: Callable[[str], str]) -> None:
        headers = {case(k): v for k, v in rendered_headers().items()}
        assert "X-CrewPass-Signature" not in headers
        verify("crewpass", SECRET, headers, GOLDEN_BODY, now=TIMESTAMP)


class TestRegistry:
    """Contracts are chosen by name, and crewpass is the default."""

    def test_crewpass_is_the_default_contract(self) -> None:
        assert DEFAULT_CONTRACT == "crewpass"
        assert isinstance(get_contract(DEFAULT_CONTRACT), CrewPassContract)
        assert "crewpass" in contract_names()

    def test_an_unknown_contract_is_refused_with_the_known_names(self) -> None:
        with pytest.raises(InputError, match=r"unknown contract 'svix'.*crewpass"):
            get_contract("svix")

    def test_generated_secrets_are_prefixed_random_and_64_hex_digits(self) -> None:
        first, second = CONTRACT.generate_secret(), CONTRACT.generate_secret()
        assert re.fullmatch(r"cpsk_[0-9a-f]{64}", first)
        assert first != second
