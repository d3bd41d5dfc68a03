"""The change feed's public surface: what a domain may import, and nothing changes it by accident."""

from __future__ import annotations

import app.changefeed as changefeed

PUBLIC = [
    "CHANGES_KEY", "NOTIFY_CHANNEL", "READY_MESSAGE", "Change", "ChangeFeed", "CycleReport", "Operation",
    "OutboxEntry",
    "OutboxState", "PollReport", "PollingWatch", "PollingWatcher", "Position", "Producer", "Relay",
    "RelayReport", "Watch", "WatcherPosition", "WatcherRow", "default_payload", "load_watches", "serve",
]


class TestPublicApi:
    """``app.changefeed.__all__`` is declared, importable, and changes only on purpose."""

    def test_the_declared_names(self) -> None:
        assert sorted(changefeed.__all__) == sorted(PUBLIC)

    def test_every_declared_name_is_importable(self) -> None:
        for name in changefeed.__all__:
            assert getattr(changefeed, name) is not None, name

    def test_every_public_module_says_what_it_is_for(self) -> None:
        from app.changefeed import (
            capture,
            detection,
            models,
            outbox,
            polling,
            producer,
            relay,
            rules,
            values,
            wakeup,
        )

        for module in (capture, detection, models, outbox, polling, producer, relay, rules, values, wakeup):
            assert module.__doc__ and len(module.__doc__.strip()) > 40, module.__name__
