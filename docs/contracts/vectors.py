"""Writes docs/contracts/vectors.json: golden test vectors for every wire contract.

Each vector gives the inputs (event, delivery id, secrets, signing time, endpoint
options) and the exact body and headers Hookline sends for them. Receivers test
their verification against these; Hookline's tests render every vector again and
fail on any changed byte. Regenerate only when a wire format changes on purpose:

    python docs/contracts/vectors.py
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.contracts import (
    AttemptContext,
    EventView,
    SigningKeys,
    get_contract,
    with_static_headers,
)
from app.hygiene import public_payload

OUT = Path(__file__).with_name("vectors.json")
TIMESTAMP = 1780912800  # 2026-06-08T10:00:00Z
OCCURRED = "2026-06-08T09:59:58Z"

SECRETS = {
    "crewpass": ("cpsk_0f9d5a3c8e2b4d6f8a1c3e5b7d9f0a2c4e6b8d0f1a3c5e7b9d2f4a6c8e0b1d3f",
                 "cpsk_7e1c9b3a5d8f2e4c6a0b9d1f3e5c7a2b4d6f8e0c1a3b5d7f9e2c4a6b8d0f1e3a"),
    "crewship": ("cssk_2b4d6f8a0c1e3a5c7e9b1d3f5a7c9e0b2d4f6a8c1e3b5d7f9a0c2e4b6d8f1a3c",
                 "cssk_9a7c5e3b1d0f2a4c6e8b9d1f3a5c7e2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3e"),
    "wallet-crew": ("wcsk_Qm9vdHN0cmFwLXZlY3Rvci1zZWNyZXQtbm90LXJlYWw",
                    "wcsk_T2xkLXZlY3Rvci1zZWNyZXQtc3RpbGwtbm90LXJlYWw"),
    "cr3dentials": ("c3k_bm90LWEtcmVhbC1hcGkta2V5LWp1c3QtYS12ZWN0b3I",
                    "c3k_b2xkLWtleS1hbHNvLW5vdC1yZWFsLWp1c3QtYS12ZWN0b3I"),
    "standard-webhooks": ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                          "whsec_9eX0dR5qWfq3l2qK6v7Tb1zYcN4mP8sJ0aLhGuIoEwQ="),
}

EVENTS: dict[str, dict[str, Any]] = {
    "crewpass": {
        "id": "evt_01JXCREWPASS0000000000001", "type": "crew.document.processed",
        "tenant_id": "prt_8f3k2m", "occurred_at": OCCURRED,
        "data": {"crew_member_id": "crw_42", "document_id": "doc_7", "document_type": "STCW",
                 "verification_status": "verified", "provider": "never-sent",
                 "_internal_note": "never sent"},
    },
    "crewship": {
        "id": "evt_01JXCREWSHIP0000000000001", "type": "run.succeeded",
        "tenant_id": "ten_acme", "occurred_at": OCCURRED,
        "data": {"run_id": "run_9", "deployment": "nightly-crew", "status": "succeeded",
                 "duration_ms": 5230, "_worker_host": "never sent"},
    },
    "wallet-crew": {
        "id": "evt_01JXWALLETCREW00000000001", "type": "Customer:Upserted",
        "tenant_id": "wallet_tenant_1", "occurred_at": OCCURRED,
        "data": {"customerId": "cus_55", "email": "zoë@example.com", "_crm_sync": "never sent"},
    },
    "cr3dentials": {
        "id": "evt_01JXCR3DENTIALS000000001", "type": "session.completed",
        "tenant_id": "ten_bank", "occurred_at": OCCURRED,
        "data": {"sessionId": "a1b2c3d4-e5f6-7890-abcd-ef1234567890", "platformId": 1,
                 "externalReferenceId": "user_abc123",
                 "extractedData": {"accountHolder": "John Doe", "accountType": "checking"},
                 "proofHash": "9f2c4e1a", "completedAt": "2025-03-24T12:05:00.000Z",
                 "metadata": {"channel": "web", "_operator": "never sent"},
                 "attestation": "never sent"},
    },
    "standard-webhooks": {
        "id": "evt_01JXSTANDARD0000000000001", "type": "run.failed",
        "tenant_id": "ten_acme", "occurred_at": OCCURRED,
        "data": {"run_id": "run_10", "error": "timeout", "_trace": "never sent"},
    },
}

DENY = {"crewpass": ["provider"], "cr3dentials": ["attestation"]}
OPTIONS: dict[str, dict[str, Any]] = {"cr3dentials": {"auth_header": "X-API-Key"}}
DELIVERY_ID = "dlv_01JXDELIVERY0000000000001"


def render(contract: str, *, rotating: bool, static: dict[str, str] | None = None) -> dict[str, Any]:
    spec = EVENTS[contract]
    current, previous = SECRETS[contract]
    keys = SigningKeys(current, previous if rotating else None)
    occurred = datetime.strptime(spec["occurred_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    view = EventView(spec["id"], spec["type"], spec["tenant_id"], occurred,
                     public_payload(spec["data"], DENY.get(contract, ())))
    auth = OPTIONS.get(contract, {}).get("auth_header")
    rendered = get_contract(contract).render(view, AttemptContext(DELIVERY_ID, keys, TIMESTAMP, auth))
    rendered = with_static_headers(rendered, static or {})
    return {
        "contract": contract,
        "name": f"{contract}/{'rotating' if rotating else 'single-secret'}"
                + ("/static-header" if static else ""),
        "event": spec,
        "internal_fields": DENY.get(contract, []),
        "delivery_id": DELIVERY_ID,
        "timestamp": TIMESTAMP,
        "secret": current,
        "previous_secret": previous if rotating else None,
        "endpoint": {"auth_header": auth, "headers": static or {}},
        "body": rendered.body.decode("utf-8"),
        "headers": rendered.headers,
    }


def vectors() -> list[dict[str, Any]]:
    out = []
    for contract in EVENTS:
        out.append(render(contract, rotating=False))
        out.append(render(contract, rotating=True))
    out.append(render("crewpass", rotating=False, static={"X-Partner-Route": "fleet-eu"}))
    return out


def page_section(contract: str, all_vectors: list[dict[str, Any]]) -> str:
    """The golden-vector section of a contract's docs page, between its markers."""
    parts = [f"<!-- vectors:begin {contract} -->",
             "Generated from [vectors.json](vectors.json) by `python docs/contracts/vectors.py`. "
             "Verify with `now` set to the vector's timestamp.", ""]
    for vector in (v for v in all_vectors if v["contract"] == contract):
        shown = {key: vector[key] for key in ("secret", "previous_secret", "timestamp", "delivery_id")}
        shown["body"] = vector["body"]
        shown["headers"] = vector["headers"]
        parts += [f"### `{vector['name']}`", "", "```json",
                  json.dumps(shown, indent=2, ensure_ascii=False), "```", ""]
    parts.append("<!-- vectors:end -->")
    return "\n".join(parts)


def fill_page(text: str, contract: str, all_vectors: list[dict[str, Any]]) -> str:
    begin = text.index(f"<!-- vectors:begin {contract} -->")
    end = text.index("<!-- vectors:end -->", begin) + len("<!-- vectors:end -->")
    return text[:begin] + page_section(contract, all_vectors) + text[end:]


def main() -> None:
    all_vectors = vectors()
    OUT.write_text(json.dumps(all_vectors, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    for contract in EVENTS:
        page = OUT.with_name(f"{contract}.md")
        page.write_text(fill_page(page.read_text(encoding="utf-8"), contract, all_vectors),
                        encoding="utf-8")
        print(f"wrote {page}")


if __name__ == "__main__":
    main()
