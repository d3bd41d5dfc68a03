"""The management API's request and response bodies: camelCase JSON, unknown fields refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.alias_generators import to_camel

from app.engine import ratelimit
from app.errors import InputError

#: Ids are a prefix and base32 (``ep_01J…``); anything else cannot name a row.
ID_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"
#: Free text may hold anything but NUL, which no database text column stores.
TEXT_PATTERN = r"^[^\x00]*$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Text = Annotated[str, StringConstraints(pattern=TEXT_PATTERN)]


def in_utc(moment: datetime) -> datetime:
    """*moment* in UTC (a time without an offset is UTC already); a ValueError if UTC
    cannot hold it (``0001-01-01T00:00:00+14:00`` is before year 1 there)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time falls outside years 1 to 9999 once converted to UTC") from None


#: A time in a request: stored and compared in UTC, so it must exist there.
UtcDateTime = Annotated[datetime, AfterValidator(in_utc)]

EnvironmentName = Literal["production", "staging"]
ContractName = Literal["crewpass", "crewship", "cr3dentials", "wallet-crew", "standard-webhooks"]
DeliveryStateName = Literal["pending", "in_flight", "retry_scheduled", "succeeded", "dead"]


class ApiModel(BaseModel):
    """A response body: built by field name in code, sent in camelCase."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True)


class ApiInput(BaseModel):
    """A request body: camelCase only, unknown fields refused, numbers finite (JSON has no NaN)."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=False,
                              validate_by_alias=True, extra="forbid", serialize_by_alias=True,
                              allow_inf_nan=False)


# -- webhooks ---------------------------------------------------------------------------
OrderingName = Literal["none", "key"]
_ORDERING = ("'key': the events of one ordering key are delivered one at a time, in the "
             "order they were published; 'none': as they come.")


class RateLimitInput(ApiInput):
    """Deliveries per second to the webhook across every worker, and the burst allowed."""

    per_second: float = Field(description=f"{ratelimit.MIN_PER_SECOND:g} to "
                                          f"{ratelimit.MAX_PER_SECOND:g} deliveries per second.")
    burst: int | None = Field(default=None, description=(
        f"{ratelimit.MIN_BURST} to {ratelimit.MAX_BURST} deliveries at once after a quiet "
        "spell; default one second's worth."))

    @model_validator(mode="after")
    def _within_bounds(self) -> RateLimitInput:
        try:
            ratelimit.rate_limit(self.per_second, self.burst)
        except InputError as exc:  # a 422 naming the bounds, like any field's
            raise ValueError(str(exc)) from None
        return self


class RateLimitView(ApiModel):
    per_second: float
    burst: int


class WebhookCreate(ApiInput):
    endpoint: Text = Field(max_length=2048, description="The https:// URL that receives POSTs.")
    events: list[Text] = Field(min_length=1, max_length=100,
                              description="Exact names, 'Category:*' / 'x.y.*', or '*'.")
    enabled: bool = True
    contract: ContractName = "crewpass"
    environment: EnvironmentName = "production"
    headers: dict[Text, Text] = Field(default_factory=dict, description="Static extra headers.")
    auth_header: Text | None = Field(default=None, max_length=100,
                                     description="cr3dentials: the header carrying the secret.")
    timeout_seconds: float | None = Field(default=None, gt=0, le=300)
    max_attempts: int | None = Field(default=None, ge=1, le=50)
    description: Text | None = Field(default=None, max_length=2000)
    signature_secret: Text | None = Field(default=None, max_length=200,
                                         description="Keep an existing secret instead of a new one.")
    ordering: OrderingName = Field(default="none", description=_ORDERING)
    rate_limit: RateLimitInput | None = None


class WebhookUpdate(ApiInput):
    endpoint: Text | None = Field(default=None, max_length=2048)
    events: list[Text] | None = Field(default=None, min_length=1, max_length=100)
    enabled: bool | None = None
    contract: ContractName | None = None
    environment: EnvironmentName | None = None
    headers: dict[Text, Text] | None = None
    auth_header: Text | None = Field(default=None, max_length=100)
    timeout_seconds: float | None = Field(default=None, gt=0, le=300)
    max_attempts: int | None = Field(default=None, ge=1, le=50)
    description: Text | None = Field(default=None, max_length=2000)
    ordering: OrderingName | None = Field(default=None, description=_ORDERING)
    rate_limit: RateLimitInput | None = Field(default=None, description="null removes it.")


class Webhook(ApiModel):
    id: str
    endpoint: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    contract: str
    environment: str
    headers: dict[str, str]
    auth_header: str | None
    timeout_seconds: float | None
    max_attempts: int | None
    description: str | None
    previous_secret_expires_at: datetime | None
    circuit: Literal["closed", "open", "half-open"] = Field(
        default="closed",
        description="The circuit breaker: open after sustained failures, nothing is sent "
                    "until circuitRetryAt, then one probe (half-open) decides.")
    circuit_retry_at: datetime | None = None
    ordering: OrderingName = Field(default="none", description=_ORDERING)
    rate_limit: RateLimitView | None = None
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(Webhook):
    signature_secret: str = Field(description="Shown on creation and rotation only.")


class WebhookPage(ApiModel):
    items: list[Webhook]
    next_cursor: str | None


class RotateSecret(ApiInput):
    grace_period_seconds: int | None = Field(default=None, ge=0, le=30 * 24 * 3600)


class RotatedSecret(ApiModel):
    id: str
    signature_secret: str
    previous_secret_valid_until: datetime | None


class TestSend(ApiInput):
    event_type: Text = Field(default="hookline.ping", max_length=128)
    data: dict[str, Any] | None = None
    wait_seconds: float = Field(default=10, ge=0, le=30,
                                description="How long to wait for the attempt's result.")


# -- events -----------------------------------------------------------------------------
class EventCreate(ApiInput):
    type: Text = Field(max_length=128)
    data: dict[str, Any]
    idempotency_key: Text | None = Field(default=None, min_length=1, max_length=200)
    ordering_key: Text | None = Field(
        default=None, min_length=1, max_length=200,
        description="The entity the event is about: its deliveries carry a sequence number "
                    "per key, and ordered webhooks receive a key's events in order.")
    environment: EnvironmentName = "production"
    webhook_url: Text | None = Field(default=None, max_length=2048,
                                    description="A one-off destination for this event only.")
    webhook_secret: Text | None = Field(
        default=None, max_length=200,
        description="The one-off destination's secret, in its contract's format; "
                    "generated when absent.")
    occurred_at: UtcDateTime | None = None


class EventAccepted(ApiModel):
    id: str
    created: bool
    delivery_ids: list[str]
    webhook_secret: str | None = Field(
        default=None, description="The one-off destination's generated secret: shown only here.")


class EventBatchCreate(ApiInput):
    """Up to 1,000 events; each item is checked on its own and answered on its own."""

    events: list[dict[str, Any]] = Field(
        max_length=1000,
        description="Items like the body of POST /events (type, data, idempotencyKey, "
                    "orderingKey, occurredAt), at most 1,000; webhookUrl is not accepted here.")
    environment: EnvironmentName = "production"


class EventBatchItem(ApiModel):
    index: int
    status: Literal["created", "existing", "error"]
    id: str | None = None
    delivery_ids: list[str] = []
    error: str | None = None
    field: str | None = None


class EventBatchAccepted(ApiModel):
    created: int
    existing: int
    errors: int
    results: list[EventBatchItem]


# -- deliveries -------------------------------------------------------------------------
class AttemptView(ApiModel):
    number: int
    started_at: datetime
    duration_ms: float | None
    status_code: int | None
    error: str | None
    error_class: str | None
    response_excerpt: str | None


class DeliveryView(ApiModel):
    id: str
    event_id: str
    event_type: str
    webhook_id: str
    state: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    dead_reason: str | None
    created_at: datetime
    succeeded_at: datetime | None
    dead_at: datetime | None
    attempts: list[AttemptView]


class DeliveryPage(ApiModel):
    items: list[DeliveryView]
    next_cursor: str | None


class EventView(ApiModel):
    id: str
    type: str
    environment: str
    #: None once the payload is past the tenant's retention (see ``pruned_at``).
    data: dict[str, Any] | None
    occurred_at: datetime
    idempotency_key: str | None
    ordering_key: str | None = None
    sequence: int | None = Field(default=None, description="Its number per tenant and "
                                 "orderingKey, sent in X-Hookline-Sequence.")
    created_at: datetime
    pruned_at: datetime | None = None
    deliveries: list[DeliveryView]


class TestResult(ApiModel):
    event_id: str
    delivery_id: str
    state: str
    finished: bool
    attempt: AttemptView | None
    poll: str


# -- dead letters -----------------------------------------------------------------------
class DeadLetterView(ApiModel):
    delivery_id: str
    event_id: str
    event_type: str
    webhook_id: str
    endpoint: str
    reason: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    dead_at: datetime | None
    ordering_key: str | None = Field(
        default=None, description="Set for an ordered webhook: the later events of this key "
                                  "went on without this one (a requeue sends it after them).")
    later_deliveries: int = Field(
        default=0, description="How many later deliveries of the ordering key went on.")


class DeadLetterPage(ApiModel):
    items: list[DeadLetterView]
    next_cursor: str | None


class DeadLetterSelection(ApiInput):
    webhook_id: Id | None = None
    event_type: Text | None = Field(default=None, max_length=128)
    reason: Text | None = Field(default=None, max_length=40)
    since: UtcDateTime | None = None


class RequeueRequest(ApiInput):
    ids: list[Id] = Field(default_factory=list, max_length=1000)
    filter: DeadLetterSelection | None = None
    all: bool = False
    dry_run: bool = False


class RequeueResult(ApiModel):
    matched: int
    requeued: list[str]
    skipped_disabled: list[str]
    not_dead: list[str]
    parked: list[str]
    dry_run: bool


# -- incoming webhooks ------------------------------------------------------------------
class IncomingWebhookCreate(ApiInput):
    name: Text = Field(min_length=1, max_length=200, description="What calls it, e.g. 'CI runs'.")
    event_type: Text = Field(max_length=128, description="The catalogued event type its calls publish.")
    environment: EnvironmentName = Field(default="production",
                                         description="The webhooks its events reach.")


class IncomingWebhook(ApiModel):
    id: str
    name: str
    event_type: str
    environment: str
    token_prefix: str = Field(description="The token's first characters, to tell hooks apart.")
    created_at: datetime
    last_used_at: datetime | None


class IncomingWebhookWithUrl(IncomingWebhook):
    url: str = Field(description="Where to POST: shown on creation only.")
    token: str = Field(description="The credential at the end of the URL: shown on creation only.")


class IncomingWebhookPage(ApiModel):
    items: list[IncomingWebhook]
    next_cursor: str | None


class HookAccepted(ApiModel):
    event_id: str
    event_type: str
    environment: str
    created: bool = Field(description="False when an Idempotency-Key repeated: the first call's event.")


class Problem(ApiModel):
    detail: str


# -- catalogue and health ---------------------------------------------------------------
class EventTypeView(ApiModel):
    name: str
    description: str
    scope: str | None


class Health(ApiModel):
    status: Literal["ok"]


class Readiness(ApiModel):
    status: Literal["ok", "unavailable"]
    database: bool
    broker: bool
