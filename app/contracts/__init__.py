"""Wire contracts, chosen per endpoint by name. See :mod:`app.contracts.base`."""

from __future__ import annotations

from app.contracts.base import Contract, EventView, RenderedRequest, SignatureError
from app.contracts.crewpass import CrewPassContract
from app.errors import InputError

DEFAULT_CONTRACT = "crewpass"

_CONTRACTS: dict[str, Contract] = {CrewPassContract.name: CrewPassContract()}


def get_contract(name: str) -> Contract:
    try:
        return _CONTRACTS[name]
    except KeyError:
        known = ", ".join(sorted(_CONTRACTS))
        raise InputError(f"unknown contract {name!r} (known: {known})") from None


def contract_names() -> list[str]:
    return sorted(_CONTRACTS)


__all__ = [
    "DEFAULT_CONTRACT",
    "Contract",
    "EventView",
    "RenderedRequest",
    "SignatureError",
    "contract_names",
    "get_contract",
]
