"""The suite's own guard refuses connections that leave the machine."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import NonLoopbackConnection


class TestLoopbackGuard:
    """A connection attempt outside loopback fails before any packet is sent."""

    @pytest.mark.parametrize("address", [("10.0.0.1", 80), ("169.254.169.254", 80),
                                         ("192.168.1.1", 443)])
    def test_private_and_metadata_addresses_are_refused(self, address: tuple[str, int]) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, \
                pytest.raises(NonLoopbackConnection):
            sock.connect(address)

    def test_loopback_is_allowed(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            with socket.create_connection(server.getsockname(), timeout=2):
                pass
