"""Every exception Hookline raises on purpose, in one tree.

::

    HooklineError
    ├── InputError                  bad input from a caller; nothing was written
    │   ├── UnknownTenant
    │   ├── UnknownEndpoint
    │   ├── UnknownIncomingWebhook  unknown, another tenant's or revoked: never told apart
    │   ├── UnknownReplay           unknown or another tenant's: never told apart
    │   ├── UnknownEventType
    │   ├── InvalidEventType        malformed name or filter pattern
    │   ├── InvalidPayload          not a JSON object, or not serialisable
    │   ├── PayloadTooLarge
    │   ├── InvalidEndpointURL
    │   │   └── BlockedDestination  http:// when not allowed, or an address deliveries may
    │   │                           not reach (loopback, private, metadata, ...)
    │   ├── BatchTooLarge           more events in one batch than the limit
    │   ├── InvalidOrderingKey      an ordering key too long, with NUL, or an unknown ordering
    │   ├── InvalidSelection        e.g. a requeue with neither ids nor --all
    │   └── InvalidWatch            a change-feed watch that cannot work as declared
    ├── ConfigurationError          settings that cannot work together
    ├── TooManyWaiting              a tenant already holds its limit of waiting test sends
    └── DeliveryFailure             the outcome of one attempt that did not succeed
        ├── RetryableFailure        408, 429, 5xx, connection errors, timeouts
        └── PermanentFailure        any other 4xx, or a request that can never be sent
"""

from __future__ import annotations


class HooklineError(Exception):
    """Base of every error Hookline raises on purpose."""


class InputError(HooklineError):
    """The caller gave something Hookline will not accept; nothing was written."""


class UnknownTenant(InputError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"unknown tenant: {ref!r}")
        self.ref = ref


class UnknownEndpoint(InputError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"unknown endpoint: {ref!r}")
        self.ref = ref


class UnknownIncomingWebhook(InputError):
    """No live incoming webhook by that id or token; the message never repeats a token."""

    def __init__(self, ref: str | None = None) -> None:
        super().__init__("unknown incoming webhook" + (f": {ref!r}" if ref else ""))
        self.ref = ref


class UnknownReplay(InputError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"unknown replay: {ref!r}")
        self.ref = ref


class UnknownEventType(InputError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown event type: {name!r} (not in the event catalogue)")
        self.name = name


class InvalidEventType(InputError):
    """A malformed event-type name or subscription pattern."""


class InvalidPayload(InputError):
    """The payload is not a JSON object or cannot be encoded as JSON."""


class PayloadTooLarge(InputError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"payload is {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class BatchTooLarge(InputError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} events in one batch, over the limit of {limit}")
        self.size = size
        self.limit = limit


class InvalidOrderingKey(InputError):
    """An ordering key over 200 characters, empty or with NUL; or an unknown ``ordering``."""


class InvalidEndpointURL(InputError):
    """An endpoint URL that is not an absolute http(s) URL with a host."""


class BlockedDestination(InvalidEndpointURL):
    """A destination the egress policy refuses (see :mod:`app.egress`).

    Raised when an endpoint is registered with such a URL, and when a hostname
    resolves to such an address at delivery time; the transport records the latter
    as a permanent failure and the delivery is dead-lettered ``blocked_destination``.
    """

    def __init__(self, message: str, *, address: str | None = None) -> None:
        super().__init__(message)
        self.address = address


class InvalidEndpointConfig(InputError):
    """An endpoint setting a contract cannot use: a malformed secret, header or auth header."""


class InvalidSelection(InputError):
    """A management command was given a selection it cannot act on."""


class InvalidWatch(InputError):
    """A watch or polling-watcher declaration that cannot work (unmapped model, unknown column…)."""


class ConfigurationError(HooklineError):
    """Settings that cannot work together."""


class TooManyWaiting(HooklineError):
    """A tenant already holds as many waiting test sends as it may; *retry_after* is in seconds."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(
            f"too many test sends waiting: a tenant may keep at most {limit} waiting for their "
            f"attempt at once; retry after {retry_after} s, or send with waitSeconds 0 and poll "
            "the delivery")
        self.limit = limit
        self.retry_after = retry_after


class DeliveryFailure(HooklineError):
    """One attempt that did not succeed; the subclass says whether to try again."""


class RetryableFailure(DeliveryFailure):
    """A failure worth retrying: 408, 429, 5xx, connection errors and timeouts."""


class PermanentFailure(DeliveryFailure):
    """A failure no retry can fix: a 4xx other than 408/429, or an unsendable request."""
