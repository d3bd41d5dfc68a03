"""Settings: read from HOOKLINE_* variables on every call, validated, embedded defaults resolved."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config.settings import get_settings
from tests.unit.conftest import clear_hookline_env


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_hookline_env(monkeypatch)


class TestEmbeddedDefaults:
    """With no servers configured, Hookline uses a SQLite file and an embedded Redis."""

    def test_the_database_is_a_sqlite_file_in_the_data_dir(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("HOOKLINE_DATA_DIR", str(tmp_path))
        settings = get_settings()
        assert settings.embedded_database
        assert settings.database_url is None
        assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'hookline.db'}"

    def test_the_broker_is_the_embedded_redis(self) -> None:
        settings = get_settings()
        assert settings.embedded_broker
        assert settings.resolved_broker_url == "redis://127.0.0.1:6399/0"

    def test_the_embedded_redis_port_can_be_moved(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOOKLINE_EMBEDDED_REDIS_PORT", "6400")
        assert get_settings().resolved_broker_url == "redis://127.0.0.1:6400/0"

    def test_a_configured_server_replaces_the_embedded_one(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HOOKLINE_DATABASE_URL", "postgresql://h/db")
        monkeypatch.setenv("HOOKLINE_BROKER_URL", "redis://cache:6379/2")
        settings = get_settings()
        assert not settings.embedded_database
        assert not settings.embedded_broker
        assert settings.resolved_database_url == "postgresql+psycopg://h/db"
        assert settings.resolved_broker_url == "redis://cache:6379/2"

    def test_the_documented_defaults(self) -> None:
        settings = get_settings()
        assert (settings.partitions, settings.max_attempts, settings.task_batch) == (8, 8, 100)
        assert (settings.endpoint_concurrency, settings.slot_wait) == (8, 1.0)
        assert settings.circuit_failure_threshold == 10
        assert (settings.retry_base_seconds, settings.retry_multiplier) == (5.0, 4.0)
        assert settings.endpoint_timeout(None) == (5.0, 30.0)
        assert settings.endpoint_timeout(2.5) == (5.0, 2.5)


class TestEnvironment:
    """The environment is read on every call, and keyword overrides win over it."""

    def test_each_call_reads_the_environment_afresh(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOOKLINE_PARTITIONS", "3")
        assert get_settings().partitions == 3
        monkeypatch.setenv("HOOKLINE_PARTITIONS", "5")
        assert get_settings().partitions == 5

    def test_a_keyword_override_wins_over_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HOOKLINE_PARTITIONS", "3")
        assert get_settings(partitions=12).partitions == 12

    def test_extra_event_types_are_a_json_list(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOOKLINE_EXTRA_EVENT_TYPES", '["acme.thing.happened"]')
        assert get_settings().extra_event_types == ["acme.thing.happened"]

    def test_a_misspelt_keyword_setting_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="partitons"):
            get_settings(partitons=3)

    def test_settings_are_frozen(self) -> None:
        settings = get_settings()
        with pytest.raises(ValidationError):
            settings.partitions = 4  # type: ignore[misc]


class TestDatabaseUrl:
    """PostgreSQL URLs are normalised to the psycopg driver; other databases are refused."""

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("postgres://u:p@db:5432/hook", "postgresql+psycopg://u:p@db:5432/hook"),
            ("postgresql://u:p@db/hook", "postgresql+psycopg://u:p@db/hook"),
            ("postgresql+psycopg://u@db/hook", "postgresql+psycopg://u@db/hook"),
            ("sqlite:////var/lib/hookline.db", "sqlite:////var/lib/hookline.db"),
        ],
    )
    def test_accepted_urls(self, monkeypatch: pytest.MonkeyPatch, given: str,
                           expected: str) -> None:
        monkeypatch.setenv("HOOKLINE_DATABASE_URL", given)
        assert get_settings().database_url == expected

    def test_an_empty_url_means_embedded(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOOKLINE_DATABASE_URL", "")
        assert get_settings().embedded_database

    @pytest.mark.parametrize("given", ["mysql://u@db/hook", "db.example:5432", "postgres"])
    def test_other_urls_are_refused(self, monkeypatch: pytest.MonkeyPatch, given: str) -> None:
        monkeypatch.setenv("HOOKLINE_DATABASE_URL", given)
        with pytest.raises(ValidationError, match="HOOKLINE_DATABASE_URL"):
            get_settings()


class TestBrokerUrl:
    """Redis and RabbitMQ brokers are accepted; any other URL is refused with a clear error."""

    @pytest.mark.parametrize("given", ["redis://cache:6379/0", "rediss://cache:6380/0",
                                       "redis+socket:///run/redis.sock"])
    def test_redis_urls_are_accepted(self, monkeypatch: pytest.MonkeyPatch, given: str) -> None:
        monkeypatch.setenv("HOOKLINE_BROKER_URL", given)
        assert get_settings().broker_url == given
        assert get_settings().broker_kind == "redis"

    @pytest.mark.parametrize("given", ["amqp://guest:guest@rabbit:5672/hookline",
                                       "amqps://u:p@rabbit.example:5671/%2F"])
    def test_rabbitmq_urls_are_accepted(self, monkeypatch: pytest.MonkeyPatch, given: str) -> None:
        monkeypatch.setenv("HOOKLINE_BROKER_URL", given)
        assert get_settings().broker_url == given
        assert get_settings().broker_kind == "amqp"

    def test_the_embedded_broker_is_redis(self) -> None:
        assert get_settings().broker_kind == "redis"

    @pytest.mark.parametrize("given", ["sqs://", "kafka://broker:9092", "pyamqp://guest@rabbit//",
                                       "sentinel://cache:26379", "cache:6379", "AMQP:/rabbit"])
    def test_other_brokers_are_refused(self, monkeypatch: pytest.MonkeyPatch, given: str) -> None:
        monkeypatch.setenv("HOOKLINE_BROKER_URL", given)
        with pytest.raises(ValidationError, match="HOOKLINE_BROKER_URL must be a redis://, "
                           "rediss://, redis\\+socket://, amqp:// or amqps:// URL"):
            get_settings()

    def test_a_key_prefix_is_refused_on_rabbitmq_which_uses_vhosts(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOOKLINE_BROKER_URL", "amqp://guest:guest@rabbit:5672/")
        monkeypatch.setenv("HOOKLINE_BROKER_KEY_PREFIX", "run-a:")
        with pytest.raises(ValidationError, match="own vhost"):
            get_settings()


class TestConsumerTimeout:
    """On RabbitMQ a worker holds a countdown retry unacknowledged: countdown, attempt and
    recording must fit in half the consumer timeout."""

    @pytest.mark.parametrize(("countdown_max", "accepted"), [(60, True), (700, True),
                                                             (746, False), (1000, False)])
    def test_the_longest_hold_must_stay_below_half_the_consumer_timeout(
        self, monkeypatch: pytest.MonkeyPatch, countdown_max: float, accepted: bool
    ) -> None:
        # 1800 s by default: 900 s for countdown + 5 s connect + 30 s read + 120 s recording.
        monkeypatch.setenv("HOOKLINE_BROKER_URL", "amqp://guest:guest@rabbit:5672/")
        monkeypatch.setenv("HOOKLINE_BROKER_COUNTDOWN_MAX", str(countdown_max))
        if accepted:
            assert get_settings().broker_countdown_max == countdown_max
        else:
            with pytest.raises(ValidationError, match="half the RabbitMQ consumer timeout"):
                get_settings()

    def test_a_shorter_server_timeout_lowers_the_bound(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOOKLINE_BROKER_URL", "amqp://guest:guest@rabbit:5672/")
        monkeypatch.setenv("HOOKLINE_BROKER_CONSUMER_TIMEOUT", "300")
        with pytest.raises(ValidationError, match="300 s"):
            get_settings()
        monkeypatch.setenv("HOOKLINE_RECORD_PATIENCE", "30")
        assert get_settings().broker_consumer_timeout == 300

    def test_redis_is_not_bound_by_the_consumer_timeout(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOOKLINE_BROKER_URL", "redis://cache:6379/0")
        monkeypatch.setenv("HOOKLINE_BROKER_CONSUMER_TIMEOUT", "10")
        assert get_settings().broker_consumer_timeout == 10


class TestLimits:
    """Settings that cannot work are refused when read, not when they bite."""

    @pytest.mark.parametrize(("countdown_max", "accepted"), [(49.9, True), (50, False),
                                                             (80, False)])
    def test_broker_countdown_max_must_stay_below_half_the_visibility_timeout(
        self, monkeypatch: pytest.MonkeyPatch, countdown_max: float, accepted: bool
    ) -> None:
        monkeypatch.setenv("HOOKLINE_VISIBILITY_TIMEOUT", "100")
        monkeypatch.setenv("HOOKLINE_BROKER_COUNTDOWN_MAX", str(countdown_max))
        if accepted:
            assert get_settings().broker_countdown_max == countdown_max
        else:
            with pytest.raises(ValidationError, match="half the visibility timeout"):
                get_settings()

    @pytest.mark.parametrize("partitions", ["0", "-1", "1025", "eight"])
    def test_an_impossible_partition_count_is_refused(
        self, monkeypatch: pytest.MonkeyPatch, partitions: str
    ) -> None:
        monkeypatch.setenv("HOOKLINE_PARTITIONS", partitions)
        with pytest.raises(ValidationError, match="partitions"):
            get_settings()

    @pytest.mark.parametrize(
        ("name", "value"),
        [("HOOKLINE_MAX_ATTEMPTS", "0"), ("HOOKLINE_RETRY_JITTER", "1"),
         ("HOOKLINE_MAX_PAYLOAD_BYTES", "100"), ("HOOKLINE_WORKER_POOL", "gevent"),
         ("HOOKLINE_LOG_LEVEL", "TRACE")],
    )
    def test_out_of_range_values_are_refused(self, monkeypatch: pytest.MonkeyPatch, name: str,
                                             value: str) -> None:
        monkeypatch.setenv(name, value)
        with pytest.raises(ValidationError):
            get_settings()


class TestMisspeltVariables:
    """A HOOKLINE_* variable that names no setting is refused, not silently ignored."""

    def test_a_misspelt_variable_is_an_error_naming_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOOKLINE_PARTITONS", "3")
        with pytest.raises(ValueError, match="HOOKLINE_PARTITONS"):
            get_settings()

    def test_a_correctly_spelt_variable_is_read(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOOKLINE_PARTITIONS", "3")
        assert get_settings().partitions == 3


class TestAsEnvironment:
    """Settings handed to a child process read back as the same settings."""

    def test_a_round_trip_through_the_environment_keeps_every_value(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        original = get_settings(data_dir=tmp_path, partitions=3, extra_event_types=["acme.thing.done"])
        for key, value in original.as_environment().items():
            monkeypatch.setenv(key, value)
        assert get_settings() == original


class TestEgressSettings:
    """Destination safety is strict unless the deployment says otherwise, and says it clearly."""

    def test_by_default_only_https_to_public_addresses_without_a_proxy(self) -> None:
        settings = get_settings()
        assert (settings.allow_http, settings.egress_allow, settings.egress_proxy) == (False, [], None)

    @pytest.mark.parametrize("given", ["127.0.0.0/8, ::1", '["127.0.0.0/8", "::1"]',
                                       "127.0.0.0/8,,::1/128,"])
    def test_the_allow_list_is_comma_separated_or_json(self, monkeypatch: pytest.MonkeyPatch,
                                                       given: str) -> None:
        monkeypatch.setenv("HOOKLINE_EGRESS_ALLOW", given)
        assert get_settings().egress_allow == ["127.0.0.0/8", "::1/128"]

    @pytest.mark.parametrize("given", ["localhost", "10.0.0.1/8", "300.0.0.0/8", "[1,2"])
    def test_an_allow_list_entry_that_is_not_a_network_is_refused(
        self, monkeypatch: pytest.MonkeyPatch, given: str
    ) -> None:
        monkeypatch.setenv("HOOKLINE_EGRESS_ALLOW", given)
        with pytest.raises(ValidationError, match="egress_allow"):
            get_settings()

    def test_plain_http_is_allowed_by_a_flag(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOOKLINE_ALLOW_HTTP", "true")
        assert get_settings().allow_http

    @pytest.mark.parametrize("given", ["http://proxy.internal:3128", "https://u:p@proxy.internal"])
    def test_an_http_or_https_proxy_is_accepted(self, monkeypatch: pytest.MonkeyPatch,
                                                given: str) -> None:
        monkeypatch.setenv("HOOKLINE_EGRESS_PROXY", given)
        assert get_settings().egress_proxy == given

    def test_an_empty_proxy_means_none(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOOKLINE_EGRESS_PROXY", "")
        assert get_settings().egress_proxy is None

    @pytest.mark.parametrize("given", ["socks5://proxy.internal:1080", "proxy.internal:3128",
                                       "http://:3128", "http://proxy.internal:99999"])
    def test_any_other_proxy_is_refused(self, monkeypatch: pytest.MonkeyPatch, given: str) -> None:
        monkeypatch.setenv("HOOKLINE_EGRESS_PROXY", given)
        with pytest.raises(ValidationError, match="HOOKLINE_EGRESS_PROXY"):
            get_settings()

    def test_the_egress_settings_survive_a_round_trip_through_the_environment(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        original = get_settings(data_dir=tmp_path, allow_http=True, egress_allow=["127.0.0.0/8", "::1"],
                                egress_proxy="http://127.0.0.1:3128")
        for key, value in original.as_environment().items():
            monkeypatch.setenv(key, value)
        assert get_settings() == original
        assert original.egress_allow == ["127.0.0.0/8", "::1/128"]


class TestPublicUrl:
    """Incoming webhook URLs start at the public URL, by default the API's own address."""

    def test_by_default_it_is_the_apis_host_and_port(self) -> None:
        assert get_settings().resolved_public_url == "http://127.0.0.1:8000"
        assert get_settings(api_port=9000).resolved_public_url == "http://127.0.0.1:9000"

    def test_a_wildcard_listen_address_stands_for_this_machine(self) -> None:
        assert get_settings(api_host="0.0.0.0").resolved_public_url == "http://127.0.0.1:8000"
        assert get_settings(api_host="::1").resolved_public_url == "http://[::1]:8000"

    def test_a_configured_url_wins_without_its_trailing_slash(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOOKLINE_PUBLIC_URL", "https://hooks.acme.example/hookline/")
        assert get_settings().resolved_public_url == "https://hooks.acme.example/hookline"

    @pytest.mark.parametrize("given", ["hooks.acme.example", "ftp://hooks.acme.example",
                                       "https://", "https://h.example/?a=1", "https://h.example:99999"])
    def test_anything_but_an_http_url_is_refused(self, monkeypatch: pytest.MonkeyPatch,
                                                 given: str) -> None:
        monkeypatch.setenv("HOOKLINE_PUBLIC_URL", given)
        with pytest.raises(ValidationError, match="HOOKLINE_PUBLIC_URL"):
            get_settings()
