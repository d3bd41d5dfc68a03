"""app.api.accesslog: uvicorn's access log never shows an incoming webhook's token."""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator

import pytest

from app.api.accesslog import RedactTokens, access_log_config, install, redact_path

TOKEN = "hlin_" + "Ab3_-" * 8 + "xyz"
SHOWN = TOKEN[:12] + "…"


def uvicorn_access_record(path: str) -> logging.LogRecord:
    """A record as uvicorn's HTTP protocols log it: the path is the third argument."""
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                             '%s - "%s %s HTTP/%s" %d',
                             ("127.0.0.1:50000", "POST", path, "1.1", 202), None)


class TestRedactPath:
    @pytest.mark.parametrize(("path", "logged"), [
        (f"/hooks/{TOKEN}", f"/hooks/{SHOWN}"),
        (f"/hooks/{TOKEN}?attempt=2", f"/hooks/{SHOWN}?attempt=2"),
        (f"/HOOKS/{TOKEN}/extra", f"/HOOKS/{SHOWN}/extra"),
        (f"/prefix//hooks/{TOKEN}", f"/prefix//hooks/{SHOWN}"),
        (f"/hooks/{TOKEN}x", "/hooks/…"),
        ("/hooks/not-a-token-but-maybe-a-mistyped-one", "/hooks/…"),
    ], ids=["token", "query", "any-case", "root-path", "too-long", "not-a-token"])
    def test_a_hook_segment_keeps_at_most_the_display_prefix(self, path: str, logged: str) -> None:
        assert TOKEN not in redact_path(path)
        assert redact_path(path) == logged

    def test_cutting_twice_changes_nothing_more(self) -> None:
        once = redact_path(f"/hooks/{TOKEN}")
        assert redact_path(once) == once
        assert redact_path("/hooks/…") == "/hooks/…"

    def test_a_token_followed_by_an_ellipsis_is_still_cut(self) -> None:
        assert redact_path(f"/hooks/{TOKEN}…") == "/hooks/…"

    @pytest.mark.parametrize("path", ["/api/tnt_1/webhooks?limit=5", "/healthz", "/hooks",
                                      "/hooks/", "/api/tnt_1/incoming-webhooks/inh_1"])
    def test_other_paths_are_left_alone(self, path: str) -> None:
        assert redact_path(path) == path


class TestRedactTokens:
    def test_a_uvicorn_access_record_loses_the_token_and_keeps_the_rest(self) -> None:
        record = uvicorn_access_record(f"/hooks/{TOKEN}")
        assert RedactTokens().filter(record) is True
        assert record.getMessage() == f'127.0.0.1:50000 - "POST /hooks/{SHOWN} HTTP/1.1" 202'

    def test_a_record_filtered_twice_still_shows_the_prefix(self) -> None:
        record = uvicorn_access_record(f"/hooks/{TOKEN}")
        RedactTokens().filter(record)
        RedactTokens().filter(record)
        assert f"/hooks/{SHOWN} " in record.getMessage()

    def test_installing_twice_adds_one_filter(self) -> None:
        logger = logging.getLogger("hookline.test.accesslog")
        install(logger)
        install(logger)
        assert [type(f) for f in logger.filters] == [RedactTokens]


@pytest.fixture
def uvicorn_loggers() -> Iterator[None]:
    """Put uvicorn's loggers back as they were after the test configures them."""
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).filters[:],
                    logging.getLogger(name).level, logging.getLogger(name).propagate)
             for name in names}
    yield
    for name, (handlers, filters, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.filters[:] = handlers, filters
        logger.setLevel(level)
        logger.propagate = propagate


class TestAccessLogConfig:
    def test_uvicorns_access_log_configured_with_it_prints_no_token(
        self, uvicorn_loggers: None, capsys: pytest.CaptureFixture[str]
    ) -> None:
        logging.config.dictConfig(access_log_config())
        logging.getLogger("uvicorn.access").handle(uvicorn_access_record(f"/hooks/{TOKEN}"))
        printed = capsys.readouterr().out
        assert TOKEN not in printed
        assert f'"POST /hooks/{SHOWN} HTTP/1.1" 202' in printed

    def test_it_is_uvicorns_default_config_plus_the_filter(self) -> None:
        config = access_log_config()
        assert config["loggers"]["uvicorn.access"]["filters"] == ["redact_tokens"]
        assert config["loggers"]["uvicorn.access"]["handlers"] == ["access"]
        assert config["filters"]["redact_tokens"]["()"] is RedactTokens
