"""The delivery engine: one batch of delivery ids, from claim to recorded outcome.

The files read as its steps:

1. :mod:`~app.engine.claim` — take the due rows (``in_flight``, attempt counted, lease set)
   with their endpoints and events, in one transaction.
2. :mod:`~app.engine.render` — the exact signed request of each attempt (pure).
3. :mod:`~app.engine.send` — every request of the batch in flight at once, capped per
   endpoint, each within its total deadline, only to addresses the egress policy allows;
   before it, a rate-limited endpoint's tokens come from its fleet-wide bucket
   (:mod:`~app.engine.limiter`, arithmetic in :mod:`~app.engine.ratelimit`): what has
   no token is deferred, not attempted.
4. :mod:`~app.engine.judge` — succeeded, retry, dead or deferred (pure), and
   :mod:`~app.engine.circuit` — each endpoint's breaker (pure).
5. :mod:`~app.engine.record` — attempts and outcomes in one transaction, conditional on
   the attempt this worker claimed.
6. :mod:`~app.engine.schedule` — after the commit: countdown retries, dead-letter notices.

:mod:`~app.engine.pipeline` runs them in order for the ``hookline.deliver`` task.
"""

from app.engine.pipeline import BatchOutcome, DeliveryEngine, retry_policy_from
from app.engine.schedule import ScheduledRetry, send_follow_ups

__all__ = ["BatchOutcome", "DeliveryEngine", "ScheduledRetry", "retry_policy_from",
           "send_follow_ups"]
