"""The receiver-side verifier (app/verify.py) accepts genuine deliveries and names what is wrong."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.verify import BadSignature, MissingHeader, StaleTimestamp, VerificationError, verify

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "contracts" / "vectors.json").read_text("utf-8"))
TIMESTAMPED = ("crewpass", "crewship", "standard-webhooks")

#: Timestamps that are not unix seconds, whatever ``str.isdigit`` or ``int()`` make of them.
MALFORMED_TIMESTAMPS = {
    "superscript-two": "\u00b2",
    "arabic-indic-digits": "\u0661\u0667\u0668\u0660\u0669\u0661\u0662\u0668\u0660\u0660",
    "over-the-int-digit-limit": "9" * 4301,
    "past-the-float-range": "9" * 400,
    "thirteen-digits": "1" * 13,
    "empty": "",
    "signed": "-1",
    "padded": " 1780912800",
    "nul": "\x00",
}
#: Header values a hostile or broken sender might deliver, for every header of every contract.
HOSTILE_VALUES = [*MALFORMED_TIMESTAMPS.values(), "\ud800", "v1=\ud800", "sha256=\ud800",
                  "v1,\ud800", "v1," + "A" * 10_000, "\r\n", "\u20ac"]


def ids(vector: dict[str, Any]) -> str:
    return str(vector["name"])


def check(vector: dict[str, Any], secrets: Any = None, *, headers: dict[str, str] | None = None,
          body: bytes | None = None, now: float | None = None, **options: Any) -> None:
    verify(vector["contract"], vector["secret"] if secrets is None else secrets,
           vector["headers"] if headers is None else headers,
           vector["body"].encode() if body is None else body,
           now=vector["timestamp"] if now is None else now, **options)


class TestAccepts:
    @pytest.mark.parametrize("vector", VECTORS, ids=ids)
    def test_every_golden_vector_verifies_with_its_current_secret(self, vector: dict[str, Any]) -> None:
        check(vector)

    @pytest.mark.parametrize("vector", [v for v in VECTORS if v["previous_secret"]], ids=ids)
    def test_a_rotating_vector_verifies_with_the_previous_secret_too(self, vector: dict[str, Any]) -> None:
        check(vector, vector["previous_secret"])
        check(vector, [vector["previous_secret"], vector["secret"]])

    @pytest.mark.parametrize("vector", VECTORS, ids=ids)
    def test_header_names_are_matched_whatever_their_case(self, vector: dict[str, Any]) -> None:
        check(vector, headers={k.upper(): v for k, v in vector["headers"].items()})

    def test_a_list_of_secrets_verifies_if_any_one_matches(self) -> None:
        vector = VECTORS[0]
        check(vector, ["cpsk_" + "0" * 64, vector["secret"]])


class TestRefuses:
    @pytest.mark.parametrize("vector", [v for v in VECTORS if v["contract"] != "cr3dentials"], ids=ids)
    def test_a_changed_body_byte_is_a_bad_signature(self, vector: dict[str, Any]) -> None:
        body = bytearray(vector["body"].encode())
        body[len(body) // 2] ^= 0x01
        with pytest.raises(BadSignature):
            check(vector, body=bytes(body))

    @pytest.mark.parametrize("vector", VECTORS, ids=ids)
    def test_a_wrong_secret_is_a_bad_signature(self, vector: dict[str, Any]) -> None:
        wrong = "whsec_" + "A" * 32 if vector["contract"] == "standard-webhooks" else "x" * 32
        with pytest.raises(BadSignature):
            check(vector, wrong)

    @pytest.mark.parametrize("vector", [v for v in VECTORS if v["contract"] in TIMESTAMPED], ids=ids)
    @pytest.mark.parametrize("skew", [301, -301])
    def test_a_timestamp_outside_five_minutes_is_stale(self, vector: dict[str, Any], skew: int) -> None:
        with pytest.raises(StaleTimestamp):
            check(vector, now=vector["timestamp"] + skew)
        check(vector, now=vector["timestamp"] + (300 if skew > 0 else -300))

    def test_a_custom_tolerance_is_honoured(self) -> None:
        vector = VECTORS[0]
        with pytest.raises(StaleTimestamp):
            check(vector, now=vector["timestamp"] + 11, tolerance=10)

    @pytest.mark.parametrize(("contract", "header"), [
        ("crewpass", "X-CrewPass-Timestamp"), ("crewpass", "X-CrewPass-Signature"),
        ("crewship", "X-Crewship-Delivery"), ("crewship", "X-Crewship-Signature"),
        ("wallet-crew", "x-neostore-signature"), ("cr3dentials", "X-API-Key"),
        ("standard-webhooks", "webhook-id"), ("standard-webhooks", "webhook-timestamp"),
        ("standard-webhooks", "webhook-signature"),
    ])
    def test_a_missing_header_is_named(self, contract: str, header: str) -> None:
        vector = next(v for v in VECTORS if v["name"] == f"{contract}/single-secret")
        headers = {k: v for k, v in vector["headers"].items() if k.lower() != header.lower()}
        with pytest.raises(MissingHeader, match=f"missing header {header}"):
            check(vector, headers=headers)

    def test_a_signature_moved_to_a_new_timestamp_is_refused(self) -> None:
        vector = VECTORS[0]
        headers = dict(vector["headers"]) | {"X-CrewPass-Timestamp": str(vector["timestamp"] + 60)}
        with pytest.raises(BadSignature):
            check(vector, headers=headers, now=vector["timestamp"] + 60)

    def test_a_timestamp_that_is_not_unix_seconds_is_refused(self) -> None:
        vector = VECTORS[0]
        with pytest.raises(StaleTimestamp, match="not unix seconds"):
            check(vector, headers=dict(vector["headers"]) | {"X-CrewPass-Timestamp": "soon"})

    @pytest.mark.parametrize("vector", [v for v in VECTORS if v["contract"] in TIMESTAMPED
                                        and v["name"].endswith("single-secret")], ids=ids)
    @pytest.mark.parametrize("value", list(MALFORMED_TIMESTAMPS.values()),
                             ids=list(MALFORMED_TIMESTAMPS))
    def test_a_malformed_timestamp_is_stale_not_a_value_error(self, vector: dict[str, Any],
                                                              value: str) -> None:
        [name] = [k for k in vector["headers"] if k.lower().endswith("timestamp")]
        with pytest.raises(StaleTimestamp, match=f"{name} is not unix seconds"):
            check(vector, headers=dict(vector["headers"]) | {name: value})

    @pytest.mark.parametrize("vector", VECTORS, ids=ids)
    def test_no_header_value_raises_anything_but_a_verification_error(
        self, vector: dict[str, Any]
    ) -> None:
        unexpected = []
        for name in vector["headers"]:
            for value in HOSTILE_VALUES:
                try:
                    check(vector, headers=dict(vector["headers"]) | {name: value})
                except VerificationError:
                    pass
                except Exception as exc:  # any other kind is what this test looks for
                    unexpected.append((name, value[:12], type(exc).__name__))
        assert unexpected == []

    def test_every_refusal_is_a_verification_error(self) -> None:
        assert issubclass(BadSignature, VerificationError)
        assert issubclass(StaleTimestamp, VerificationError)
        assert issubclass(MissingHeader, VerificationError)

    def test_an_unknown_contract_or_no_secret_is_a_programming_error(self) -> None:
        with pytest.raises(ValueError, match="unknown contract"):
            verify("svix", "s", {}, b"")
        with pytest.raises(ValueError, match="at least one secret"):
            verify("crewpass", [], {}, b"")


def test_the_verifier_imports_nothing_outside_the_standard_library() -> None:
    code = ("import sys, app.verify; "
            "bad = [m for m in ('sqlalchemy', 'celery', 'redis', 'requests', 'pydantic') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2], timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
