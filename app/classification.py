"""What an attempt's result means: succeeded, retry, or permanent. Pure, table-first.

2xx succeeds. 408, 429, 5xx, connection errors and timeouts are retried. 410 Gone is
permanent and also disables the endpoint. Any other 4xx is a permanent rejection, and
so is a request that can never be sent: a malformed one, or one to a destination the
egress policy blocks (:mod:`app.egress`), which no retry would make safe.
1xx and 3xx (redirects are not followed) count as retryable failures: the receiver
answered, but not with an acceptance.
"""

from __future__ import annotations

import enum


class Verdict(enum.Enum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"
    PERMANENT = "permanent"
    PERMANENT_DISABLE = "permanent_disable"


#: 4xx statuses that are worth retrying; every other 4xx is a permanent rejection.
RETRYABLE_4XX = frozenset({408, 429})
#: 4xx statuses that also switch the endpoint off.
DISABLING_STATUSES = frozenset({410})


class TransportError(enum.Enum):
    """Failures where no HTTP status came back."""

    CONNECT = "connect"
    TIMEOUT = "timeout"
    PROTOCOL = "protocol"
    INVALID_REQUEST = "invalid_request"
    #: The destination is one deliveries may not reach; no socket was opened to it.
    BLOCKED = "blocked"


#: Transport errors no retry can fix.
PERMANENT_ERRORS = frozenset({TransportError.INVALID_REQUEST, TransportError.BLOCKED})


def classify(status: int | None, error: TransportError | None = None) -> Verdict:
    """The verdict for one attempt, from its HTTP status or its transport error."""
    if status is None:
        if error in PERMANENT_ERRORS:
            return Verdict.PERMANENT
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.SUCCEEDED
    if status in DISABLING_STATUSES:
        return Verdict.PERMANENT_DISABLE
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        return Verdict.PERMANENT
    return Verdict.RETRY
