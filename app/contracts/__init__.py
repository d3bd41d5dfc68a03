"""Wire contracts, chosen per endpoint by name. See :mod:`app.contracts.base`."""

from __future__ import annotations

from app.contracts.base import (
    AttemptContext,
    Contract,
    EventView,
    RenderedRequest,
    SigningKeys,
    validate_header_name,
    validate_static_headers,
    with_static_headers,
)
from app.contracts.cr3dentials import Cr3dentialsContract
from app.contracts.crewpass import CrewPassContract
from app.contracts.crewship import CrewshipContract
from app.contracts.standard_webhooks import StandardWebhooksContract
from app.contracts.wallet_crew import WalletCrewContract
from app.errors import InvalidEndpointConfig

DEFAULT_CONTRACT = "crewpass"

_CONTRACTS: dict[str, Contract] = {
    contract.name: contract
    for contract in (
        CrewPassContract(),
        CrewshipContract(),
        Cr3dentialsContract(),
        WalletCrewContract(),
        StandardWebhooksContract(),
    )
}


def get_contract(name: str) -> Contract:
    try:
        return _CONTRACTS[name]
    except KeyError:
        known = ", ".join(sorted(_CONTRACTS))
        raise InvalidEndpointConfig(f"unknown contract {name!r} (known: {known})") from None


def contract_names() -> list[str]:
    return sorted(_CONTRACTS)


__all__ = [
    "DEFAULT_CONTRACT",
    "AttemptContext",
    "Contract",
    "EventView",
    "RenderedRequest",
    "SigningKeys",
    "contract_names",
    "get_contract",
    "validate_header_name",
    "validate_static_headers",
    "with_static_headers",
]
