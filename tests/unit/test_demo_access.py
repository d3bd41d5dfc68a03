"""The demo reaches its own loopback receiver and loosens nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.demo import receiver_access
from app.egress import egress_policy_from
from config.settings import get_settings
from tests.unit.conftest import clear_hookline_env


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_hookline_env(monkeypatch)


class TestReceiverAccess:
    """The demo allows plain http and 127.0.0.1 on top of whatever is already allowed."""

    def test_a_default_deployment_gets_http_and_the_receiver_address(self, tmp_path: Path) -> None:
        assert receiver_access(get_settings(data_dir=tmp_path)) == {
            "HOOKLINE_ALLOW_HTTP": "true", "HOOKLINE_EGRESS_ALLOW": "127.0.0.1/32"}

    def test_an_existing_allow_list_is_kept(self, tmp_path: Path) -> None:
        settings = get_settings(data_dir=tmp_path, egress_allow=["10.1.0.0/16"])
        assert receiver_access(settings)["HOOKLINE_EGRESS_ALLOW"] == "10.1.0.0/16,127.0.0.1/32"

    def test_the_variables_let_the_receiver_in_and_keep_the_rest_out(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        for key, value in receiver_access(get_settings(data_dir=tmp_path)).items():
            monkeypatch.setenv(key, value)
        policy = egress_policy_from(get_settings(data_dir=tmp_path))
        assert policy.check_url("http://127.0.0.1:8080/partner").port == 8080
        assert policy.refusal("127.0.0.1") is None
        assert policy.refusal("127.0.0.2") is not None
        assert policy.refusal("169.254.169.254") is not None
