"""The ``hookline`` command: operator actions, processes and the demo.

Every command builds the settings once from the environment, exits 0 when it did
(or had nothing to do), and exits 2 with one clear line on bad input.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Column, Table

from app import admin, db, deadletters, pruning, replays
from app.client import Hookline
from app.embedded import ensure_embedded_redis
from app.errors import HooklineError
from app.names import DEAD_LETTER_QUEUE, MAINTENANCE_QUEUE, partition_queue
from app.partitioning import parse_partition_spec
from config.settings import Settings, get_settings

cli = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Hookline: signed, retried, dead-lettered webhook delivery.")
db_cli = typer.Typer(no_args_is_help=True, help="Database schema.")
tenants_cli = typer.Typer(no_args_is_help=True, help="Tenants: who publishes events.")
endpoints_cli = typer.Typer(no_args_is_help=True, help="Endpoints: who receives them.")
events_cli = typer.Typer(no_args_is_help=True, help="Events.")
dlq_cli = typer.Typer(no_args_is_help=True, help="Dead letters: list and requeue.")
hooks_cli = typer.Typer(no_args_is_help=True, help="Incoming webhooks: URLs whose calls publish events.")
cli.add_typer(db_cli, name="db")
cli.add_typer(tenants_cli, name="tenants")
cli.add_typer(endpoints_cli, name="endpoints")
cli.add_typer(events_cli, name="events")
cli.add_typer(dlq_cli, name="dlq")
cli.add_typer(hooks_cli, name="hooks")

out = Console()
err = Console(stderr=True)

#: Above this many rows, requeue shows a progress bar.
PROGRESS_THRESHOLD = 200


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def load_settings() -> Settings:
    try:
        return get_settings()
    except Exception as exc:  # pydantic's ValidationError names the variable
        fail(f"bad configuration: {exc}")


def hookline_for(settings: Settings) -> Hookline:
    if settings.embedded_database:
        db.upgrade(settings)
    return Hookline(settings)


def parse_since(text: str | None) -> datetime | None:
    """``--since``: see :func:`parse_moment`; None when not given."""
    return None if text is None else parse_moment(text, "--since")


def parse_moment(text: str, option: str) -> datetime:
    """``2h``, ``30m``, ``7d``, ``45s`` ago, or an ISO-8601 time (UTC unless it says),
    given as *option*; a clear error otherwise."""
    match = re.fullmatch(r"([0-9]{1,12})([smhd])", text.strip())
    try:
        if match:
            unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
            return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
        moment = datetime.fromisoformat(text)
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:
        fail(f"{option} {text!r}: that is before year 1 or after 9999 in UTC")
    except ValueError:
        fail(f"{option} {text!r}: use a duration like 2h or 30m, or an ISO-8601 time")


# -- db ---------------------------------------------------------------------------------
@db_cli.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Create or migrate the schema."""
    settings = load_settings()
    db.upgrade(settings, revision)
    out.print(f"database at revision {revision}: {settings.resolved_database_url.split('@')[-1]}")


# -- tenants ----------------------------------------------------------------------------
@tenants_cli.command("create")
def tenants_create(name: str) -> None:
    """Create a tenant; prints its management API key once."""
    from app.apikeys import create_api_key

    hl = hookline_for(load_settings())
    try:
        tenant = admin.create_tenant(hl.sessions, name)
        key = create_api_key(hl.sessions, tenant.id)
    except HooklineError as exc:
        fail(str(exc))
    out.print(f"tenant   {tenant.id} {tenant.name}")
    out.print(f"api key  {key.key}")
    out.print("[dim]The API key is shown once (only its hash is stored): send it as X-API-KEY.[/]")


@tenants_cli.command("new-key")
def tenants_new_key(tenant: str) -> None:
    """Issue another API key for a tenant (id or name); prints it once."""
    from app.apikeys import create_api_key

    hl = hookline_for(load_settings())
    try:
        key = create_api_key(hl.sessions, tenant)
    except HooklineError as exc:
        fail(str(exc))
    out.print(f"api key  {key.key}  (id {key.id})")


@tenants_cli.command("revoke-key")
def tenants_revoke_key(key_id: str) -> None:
    """Revoke an API key by its id."""
    from app.apikeys import revoke_api_key

    hl = hookline_for(load_settings())
    if revoke_api_key(hl.sessions, key_id):
        out.print(f"api key {key_id} revoked")
    else:
        fail(f"no active API key {key_id}")


@tenants_cli.command("list")
def tenants_list() -> None:
    """List tenants."""
    hl = hookline_for(load_settings())
    table = Table("id", "name", "created")
    for tenant in admin.list_tenants(hl.sessions):
        table.add_row(tenant.id, tenant.name, tenant.created_at.isoformat(timespec="seconds"))
    out.print(table)


# -- endpoints --------------------------------------------------------------------------
@endpoints_cli.command("add")
def endpoints_add(
    url: str,
    tenant: Annotated[str, typer.Option(help="Tenant id or name.")],
    events: Annotated[str, typer.Option(help="Comma-separated filters: names, Category:*, *.")],
    contract: Annotated[str, typer.Option(help="Wire contract.")] = "crewpass",
    timeout: Annotated[float | None, typer.Option(help="Read timeout, seconds.")] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts in all.")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    header: Annotated[list[str] | None, typer.Option(
        help="Static header 'Name: value' sent on every delivery; repeatable.")] = None,
    auth_header: Annotated[str | None, typer.Option(
        help="cr3dentials: the header carrying the secret (default X-API-Key).")] = None,
    secret: Annotated[str | None, typer.Option(
        help="Keep an existing secret instead of generating one.")] = None,
    ordering: Annotated[str, typer.Option(
        help="'key': one delivery at a time per ordering key, in order; 'none': as they come."
    )] = "none",
    rate_limit: Annotated[float | None, typer.Option(
        help="Deliveries per second to this endpoint across all workers (0.01-10000).")] = None,
    burst: Annotated[int | None, typer.Option(
        help="With --rate-limit: deliveries at once after a quiet spell (1-100000; "
             "default one second's worth).")] = None,
) -> None:
    """Subscribe a URL; prints the endpoint id and its signing secret (shown once)."""
    hl = hookline_for(load_settings())
    try:
        created = admin.add_endpoint(
            hl.sessions, hl.catalogue, tenant=tenant, url=url,
            events=[e for e in events.split(",") if e.strip()], contract=contract,
            timeout_seconds=timeout, max_attempts=max_attempts, description=description,
            headers=_parse_headers(header or []), auth_header=auth_header, secret=secret,
            policy=hl.egress_policy, ordering=ordering,
            rate_limit_per_second=rate_limit, rate_limit_burst=burst,
        )
    except HooklineError as exc:
        fail(str(exc))
    out.print(f"endpoint {created.endpoint.id}")
    out.print(f"secret   {created.secret}")
    out.print("[dim]The secret is shown once: store it now.[/]")


def _parse_headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep:
            fail(f"--header {value!r}: expected 'Name: value'")
        headers[name.strip()] = text.strip()
    return headers


@endpoints_cli.command("rotate-secret")
def endpoints_rotate_secret(
    endpoint_id: str,
    grace: Annotated[float | None, typer.Option(
        help="Hours the old secret keeps signing too (default HOOKLINE_ROTATION_GRACE_SECONDS).")] = None,
) -> None:
    """Give an endpoint a new secret; prints it once. The old one signs too until the grace ends."""
    settings = load_settings()
    hl = hookline_for(settings)
    hours = grace if grace is not None else settings.rotation_grace_seconds / 3600
    try:
        rotated = admin.rotate_secret(hl.sessions, endpoint_id, grace=timedelta(hours=hours))
    except HooklineError as exc:
        fail(str(exc))
    out.print(f"secret   {rotated.secret}")
    if rotated.previous_valid_until is not None:
        out.print(f"the previous secret keeps signing until {rotated.previous_valid_until.isoformat()}")
    else:
        out.print("the previous secret no longer signs")
    out.print("[dim]The secret is shown once: store it now.[/]")


@endpoints_cli.command("list")
def endpoints_list(tenant: Annotated[str | None, typer.Option()] = None) -> None:
    """List endpoints (secrets are never shown)."""
    hl = hookline_for(load_settings())
    try:
        rows = admin.list_endpoints(hl.sessions, tenant)
    except HooklineError as exc:
        fail(str(exc))
    table = Table("id", "tenant", "url", "contract", "events", "enabled", "circuit", "partition",
                  "rate limit")
    from app.api.views import circuit_name
    from app.partitioning import partition_for

    for ep in rows:
        state = "yes" if ep.enabled else f"no ({ep.disabled_reason})"
        circuit: str = circuit_name(ep.circuit_state)
        if circuit != "closed" and ep.circuit_retry_at is not None:
            circuit += f" until {ep.circuit_retry_at:%H:%M:%S}"
        table.add_row(ep.id, ep.tenant_id, ep.url, ep.contract, ",".join(ep.event_types), state,
                      circuit, str(partition_for(ep.id, hl.settings.partitions)),
                      _rate_limit_text(ep.rate_limit_per_second, ep.rate_limit_burst))
    out.print(table)


def _rate_limit_text(per_second: float | None, burst: int | None) -> str:
    return "-" if per_second is None else f"{per_second:g}/s burst {burst}"


@endpoints_cli.command("update")
def endpoints_update(
    endpoint_id: str,
    rate_limit: Annotated[float | None, typer.Option(
        help="Deliveries per second to this endpoint across all workers (0.01-10000).")] = None,
    burst: Annotated[int | None, typer.Option(
        help="With --rate-limit: deliveries at once after a quiet spell (1-100000).")] = None,
    no_rate_limit: Annotated[bool, typer.Option(
        "--no-rate-limit", help="Remove the endpoint's rate limit.")] = False,
) -> None:
    """Change an endpoint's rate limit; it applies to the next deliveries."""
    if no_rate_limit and (rate_limit is not None or burst is not None):
        fail("--no-rate-limit cannot go with --rate-limit or --burst")
    if not no_rate_limit and rate_limit is None:
        fail("nothing to change: give --rate-limit (and --burst) or --no-rate-limit")
    hl = hookline_for(load_settings())
    wanted = None if no_rate_limit else {"per_second": rate_limit, "burst": burst}
    try:
        updated = admin.update_endpoint(hl.sessions, hl.catalogue, endpoint_id,
                                        {"rate_limit": wanted})
    except HooklineError as exc:
        fail(str(exc))
    text = _rate_limit_text(updated.endpoint.rate_limit_per_second,
                            updated.endpoint.rate_limit_burst)
    out.print(f"endpoint {endpoint_id} rate limit {'none' if text == '-' else text}")


def _toggle(endpoint_id: str, enabled: bool) -> None:
    hl = hookline_for(load_settings())
    try:
        changed = admin.set_endpoint_enabled(hl.sessions, endpoint_id, enabled)
    except HooklineError as exc:
        fail(str(exc))
    word = "enabled" if enabled else "disabled"
    if changed:
        out.print(f"endpoint {endpoint_id} {word}")
    else:
        out.print(f"endpoint {endpoint_id} was already {word}; nothing to do")


@endpoints_cli.command("ordering")
def endpoints_ordering(endpoint_id: str, ordering: Annotated[str, typer.Argument(
        help="'key' (one delivery at a time per ordering key) or 'none'.")]) -> None:
    """Set an endpoint's delivery order; it applies to events published from now on."""
    hl = hookline_for(load_settings())
    try:
        admin.update_endpoint(hl.sessions, hl.catalogue, endpoint_id, {"ordering": ordering})
    except HooklineError as exc:
        fail(str(exc))
    out.print(f"endpoint {endpoint_id} ordering {ordering}")


@endpoints_cli.command("disable")
def endpoints_disable(endpoint_id: str) -> None:
    """Stop deliveries to an endpoint (pending ones are dead-lettered as endpoint_disabled)."""
    _toggle(endpoint_id, False)


@endpoints_cli.command("enable")
def endpoints_enable(endpoint_id: str) -> None:
    """Resume deliveries to an endpoint."""
    _toggle(endpoint_id, True)


# -- events -----------------------------------------------------------------------------
@events_cli.command("publish")
def events_publish(
    tenant: Annotated[str, typer.Option(help="Tenant id or name.")],
    event_type: Annotated[str, typer.Option("--type", help="Event type, e.g. crew.status.changed.")],
    data: Annotated[str, typer.Option(help="JSON object, @file, or - for stdin.")] = "{}",
    idempotency_key: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Publish one event and fan it out to matching endpoints."""
    if data == "-":
        text = sys.stdin.read()
    elif data.startswith("@"):
        try:
            text = Path(data[1:]).read_text()
        except OSError as exc:
            fail(f"cannot read {data[1:]}: {exc.strerror}")
    else:
        text = data
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--data is not valid JSON: {exc}")
    hl = hookline_for(load_settings())
    try:
        result = hl.publish(tenant, event_type, payload, idempotency_key=idempotency_key)
    except HooklineError as exc:
        fail(str(exc))
    verb = "published" if result.created else "already published (idempotency key)"
    out.print(f"event {result.event_id} {verb}: {len(result.delivery_ids)} deliveries")


# -- incoming webhooks ------------------------------------------------------------------
@hooks_cli.command("create")
def hooks_create(
    tenant: Annotated[str, typer.Option(help="Tenant id or name.")],
    name: Annotated[str, typer.Option(help="What calls it, e.g. 'CI runs'.")],
    event_type: Annotated[str, typer.Option(
        "--event-type", help="The catalogued event type its calls publish.")],
    environment: Annotated[str, typer.Option(help="production or staging.")] = "production",
) -> None:
    """Create an incoming webhook; prints its URL once (the token in it is the credential)."""
    from app import inbound

    settings = load_settings()
    hl = hookline_for(settings)
    try:
        created = inbound.create(hl.sessions, hl.catalogue, tenant=tenant, name=name,
                                 event_type=event_type, environment=environment)
    except HooklineError as exc:
        fail(str(exc))
    hook = created.hook
    out.print(f"hook  {hook.id} {hook.event_type} ({hook.environment})", highlight=False)
    out.print(f"url   {inbound.hook_url(settings.resolved_public_url, created.token)}",
              soft_wrap=True, highlight=False)
    out.print("[dim]The URL is shown once: only its token's hash is stored.[/]")


@hooks_cli.command("list")
def hooks_list(tenant: Annotated[str | None, typer.Option(help="Tenant id or name.")] = None) -> None:
    """List live incoming webhooks (their URLs are never shown again)."""
    from app import inbound

    hl = hookline_for(load_settings())
    try:
        rows = inbound.list_hooks(hl.sessions, tenant)
    except HooklineError as exc:
        fail(str(exc))
    # ids are what `hooks revoke` takes: never cut short
    table = Table(Column("id", no_wrap=True, min_width=30), "tenant", "name", "event type",
                  "environment", "token", "last used")
    for hook in rows:
        used = hook.last_used_at.isoformat(timespec="seconds") if hook.last_used_at else "never"
        table.add_row(hook.id, hook.tenant_id, hook.name, hook.event_type, hook.environment,
                      f"{hook.token_prefix}…", used)
    out.print(table)


@hooks_cli.command("revoke")
def hooks_revoke(hook_id: str) -> None:
    """Revoke an incoming webhook: its URL answers 404 from now on."""
    from app import inbound

    hl = hookline_for(load_settings())
    try:
        revoked = inbound.revoke(hl.sessions, hook_id)
    except HooklineError as exc:
        fail(str(exc))
    if revoked:
        out.print(f"hook {hook_id} revoked")
    else:
        out.print(f"hook {hook_id} was already revoked; nothing to do")


# -- dead letters -----------------------------------------------------------------------
def _filter(endpoint: str | None, event_type: str | None, reason: str | None,
            since: str | None) -> deadletters.DeadLetterFilter:
    try:
        return deadletters.DeadLetterFilter(endpoint_id=endpoint, event_type=event_type,
                                            reason=reason, since=parse_since(since))
    except HooklineError as exc:
        fail(str(exc))


EndpointOpt = Annotated[str | None, typer.Option("--endpoint", help="Endpoint id.")]
TypeOpt = Annotated[str | None, typer.Option("--event-type", help="Exact event type.")]
ReasonOpt = Annotated[str | None, typer.Option(
    "--reason", help="permanent_4xx, exhausted, endpoint_disabled, permanent_error.")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="2h, 30m, 7d or ISO time.")]


@dlq_cli.command("list")
def dlq_list(endpoint: EndpointOpt = None, event_type: TypeOpt = None, reason: ReasonOpt = None,
             since: SinceOpt = None, limit: int = 100) -> None:
    """List dead letters, oldest first."""
    flt = _filter(endpoint, event_type, reason, since)
    hl = hookline_for(load_settings())
    rows = deadletters.list_dead_letters(hl.sessions, flt, limit=limit)
    if not rows:
        out.print("no dead letters")
        return
    table = Table("delivery", "event", "type", "endpoint", "reason", "attempts", "last status",
                  "last error", "dead at")
    for r in rows:
        table.add_row(r.delivery_id, r.event_id, r.event_type, r.endpoint_id, r.reason,
                      str(r.attempts), str(r.last_status_code or "-"), (r.last_error or "")[:60],
                      r.dead_at.isoformat(timespec="seconds") if r.dead_at else "")
    out.print(table)
    out.print(f"{len(rows)} dead letter(s)")


@dlq_cli.command("requeue")
def dlq_requeue(
    ids: Annotated[list[str] | None, typer.Argument(help="Delivery ids.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter matching the filters.")] = False,
    endpoint: EndpointOpt = None, event_type: TypeOpt = None, reason: ReasonOpt = None,
    since: SinceOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be requeued.")] = False,
) -> None:
    """Send dead letters again with a fresh attempt budget. Idempotent."""
    flt = _filter(endpoint, event_type, reason, since)
    hl = hookline_for(load_settings())
    with Progress(console=err, transient=True) as progress:
        bar = None

        def advance(n: int) -> None:
            nonlocal bar
            if bar is not None:
                progress.advance(bar, n)

        try:
            matched = deadletters.list_dead_letters(hl.sessions, flt, limit=None) if all_ or not ids else []
            if len(matched) > PROGRESS_THRESHOLD and not dry_run:
                bar = progress.add_task("requeueing", total=len(matched))
            report = deadletters.requeue(hl.sessions, hl.dispatcher, ids=ids or [],
                                         select_all=all_, flt=flt, dry_run=dry_run,
                                         progress=advance)
        except HooklineError as exc:
            fail(str(exc))
    prefix = "would requeue" if dry_run else "requeued"
    if not report.requeued and not report.skipped_disabled:
        out.print("nothing to do: no matching dead letters")
    else:
        out.print(f"{prefix} {len(report.requeued)} dead letter(s)")
        for delivery_id in report.requeued[:20]:
            out.print(f"  {delivery_id}")
        if len(report.requeued) > 20:
            out.print(f"  … and {len(report.requeued) - 20} more")
    if report.not_dead:
        out.print(f"{len(report.not_dead)} named delivery(ies) are not dead letters (already requeued?): "
                  + ", ".join(report.not_dead))
    if report.skipped_disabled:
        out.print(f"skipped {len(report.skipped_disabled)} whose endpoint is disabled: enable it first")
    if report.parked:
        out.print(f"{len(report.parked)} could not reach the broker now; the sweeper will send them")


# -- replay and retention --------------------------------------------------------------
def _replay_summary(view: replays.ReplayView) -> None:
    c = view.counts
    out.print(f"replay {view.id}: {view.status}; sent {c.sent} of {c.matched} matched; "
              f"pruned/skipped {c.pruned}; endpoint disabled/skipped {c.skipped_disabled}; "
              f"still in progress/skipped {c.skipped_active}", highlight=False)


@cli.command("replay")
def replay_cmd(
    tenant: Annotated[str | None, typer.Option(help="Tenant id or name.")] = None,
    since: Annotated[str | None, typer.Option(help="Window start: 2h, 7d or ISO time.")] = None,
    until: Annotated[str | None, typer.Option(help="Window end (exclusive); now if unset.")] = None,
    endpoint: EndpointOpt = None, event_type: TypeOpt = None,
    state: Annotated[str, typer.Option(help="succeeded, dead or any.")] = "any",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count; send nothing.")] = False,
    resume: Annotated[str | None, typer.Option(help="Resume a stopped replay by id.")] = None,
    cancel: Annotated[str | None, typer.Option(help="Cancel a running replay by id.")] = None,
) -> None:
    """Send again every delivery created in a time window. Resumable; once per replay id."""
    hl = hookline_for(load_settings())
    settings = hl.settings
    try:
        if cancel is not None:
            _replay_summary(replays.cancel_replay(hl.sessions, cancel))
            return
        if resume is None:
            if tenant is None or since is None:
                fail("give --tenant and --since (or --resume ID)")
            request = replays.ReplayRequest(
                tenant=tenant, since=parse_moment(since, "--since"),
                until=parse_moment(until, "--until") if until is not None else None,
                endpoint_id=endpoint, event_type=event_type, state=state)
            if dry_run:
                c = replays.preview(hl.sessions, request,
                                    default_retention_days=settings.retention_days)
                out.print(f"would send {c.sent} of {c.matched} matched; pruned/skipped {c.pruned}; "
                          f"endpoint disabled/skipped {c.skipped_disabled}; still in "
                          f"progress/skipped {c.skipped_active}")
                return
            view = replays.create_replay(hl.sessions, request,
                                         default_retention_days=settings.retention_days)
            err.print(f"replay {view.id} (resume with --resume {view.id})", highlight=False)
            replay_id = view.id
        else:
            replay_id = resume
        total = replays.remaining(hl.sessions, replay_id)
        with Progress(console=err, transient=True) as progress:
            bar = progress.add_task("replaying", total=total)
            view = replays.run_replay(
                hl.sessions, hl.dispatcher, replay_id, batch=settings.replay_batch,
                progress=lambda _view, handled: progress.advance(bar, handled))
    except HooklineError as exc:
        fail(str(exc))
    _replay_summary(view)


@cli.command("prune")
def prune_cmd(batch: Annotated[int | None, typer.Option(min=1, help="Rows per transaction.")] = None,
              ) -> None:
    """Prune payloads and attempts past each tenant's retention, now."""
    hl = hookline_for(load_settings())
    report = pruning.prune(hl.engine, default_days=hl.settings.retention_days,
                           batch=batch or hl.settings.prune_batch)
    out.print(f"deleted {report.attempts} attempt(s), pruned {report.events} event payload(s)")


@tenants_cli.command("retention")
def tenants_retention(
    tenant: str,
    days: Annotated[int | None, typer.Option(help="Keep payloads and attempts this many days.")] = None,
    default: Annotated[bool, typer.Option("--default", help="Back to HOOKLINE_RETENTION_DAYS.")] = False,
) -> None:
    """Show or set a tenant's retention."""
    hl = hookline_for(load_settings())
    try:
        if days is not None or default:
            if days is not None and default:
                fail("give --days or --default, not both")
            row = pruning.set_retention(hl.sessions, tenant, None if default else days)
        else:
            row = pruning.get_retention(hl.sessions, tenant)
    except HooklineError as exc:
        fail(str(exc))
    if row.retention_days is None:
        out.print(f"tenant {row.id} keeps {hl.settings.retention_days} days (the default)")
    else:
        out.print(f"tenant {row.id} keeps {row.retention_days} days")


# -- processes --------------------------------------------------------------------------
@cli.command()
def worker(
    partitions: Annotated[str | None, typer.Option(help="Partitions to consume, e.g. 0-7 or 0,3.")] = None,
    concurrency: Annotated[int | None, typer.Option()] = None,
    pool: Annotated[str | None, typer.Option(help="threads, prefork or solo.")] = None,
    beat: Annotated[bool, typer.Option("--beat", help="Also run the sweeper schedule.")] = False,
    maintenance: Annotated[bool, typer.Option(help="Consume the sweep and dead-letter queues.")] = True,
    hostname: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Run a delivery worker."""
    settings = load_settings()
    try:
        spec = partitions or f"0-{settings.partitions - 1}"
        chosen = parse_partition_spec(spec, settings.partitions)
    except ValueError as exc:
        fail(str(exc))
    ensure_embedded_redis(settings)
    if settings.embedded_database:
        db.upgrade(settings)
    from workers.main import create_worker_app

    app = create_worker_app(settings)
    queues = [partition_queue(i) for i in chosen]
    if maintenance:
        queues += [MAINTENANCE_QUEUE, DEAD_LETTER_QUEUE]
    argv = ["worker", f"--queues={','.join(queues)}", f"--pool={pool or settings.worker_pool}",
            f"--concurrency={concurrency or settings.worker_concurrency}", "--events",
            f"--loglevel={settings.log_level}", "--without-mingle", "--without-gossip"]
    if hostname:
        argv.append(f"--hostname={hostname}")
    if beat:
        argv += ["--beat", f"--schedule={settings.data_dir.resolve() / 'celerybeat-schedule'}"]
    app.worker_main(argv)


@cli.command("beat")
def beat_cmd() -> None:
    """Run the sweeper schedule (celery beat). Run exactly one per deployment."""
    settings = load_settings()
    ensure_embedded_redis(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    from workers.celery_app import create_celery_app

    create_celery_app(settings).start(["beat", f"--loglevel={settings.log_level}"])


@cli.command()
def sweep() -> None:
    """Run the sweeper once, now."""
    settings = load_settings()
    ensure_embedded_redis(settings)
    hl = hookline_for(settings)
    report = hl.sweeper.run()
    for delivery_id, reason in report.dead:
        hl.dispatcher.dead_letter(delivery_id, reason)
    out.print(f"recovered {report.lost} lost attempt(s), sent {report.dispatched} delivery(ies)"
              + (", broker had been reset" if report.broker_reset else ""))


@cli.command()
def producer(
    batch: Annotated[int | None, typer.Option(min=1, help="Outbox rows per transaction.")] = None,
    poll_interval: Annotated[float | None, typer.Option(
        min=0.01, help="Seconds between outbox polls when no NOTIFY wakes it sooner.")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="Relay what is waiting, poll each watcher until caught up, then exit.")] = False,
    watchers: Annotated[list[str] | None, typer.Option(
        "--watchers", help="Polling watches to run, as module.path:attribute (repeatable).")] = None,
    listen: Annotated[bool | None, typer.Option(
        "--listen/--no-listen", help="Wake on PostgreSQL LISTEN/NOTIFY (default: on).")] = None,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="First make outbox rows that failed to relay pending again.")] = False,
) -> None:
    """Relay the change-feed outbox to events and run polling watchers, until SIGTERM or SIGINT."""
    import logging

    from app.changefeed import Producer, load_watches, serve

    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ensure_embedded_redis(settings)
    hl = hookline_for(settings)
    try:
        runner = Producer(hl, watches=load_watches(watchers or []), batch=batch,
                          poll_interval=poll_interval, listen=listen)
    except HooklineError as exc:
        fail(str(exc))
    if retry_failed:
        out.print(f"{runner.relay.retry_failed()} failed outbox row(s) made pending again")
    if not once:
        serve(runner, grace=settings.producer_shutdown_grace)
        return
    report = runner.run_once()
    runner.close()
    out.print(f"relayed {report.relayed} event(s): {report.deliveries} deliveries, "
              f"{report.failed} failed, {report.parked} parked")
    for name, polled in report.watchers.items():
        out.print(f"watcher {name}: {polled.rows} row(s) read, {polled.emitted} event(s)")


@cli.command()
def flower(port: Annotated[int | None, typer.Option()] = None,
           address: Annotated[str, typer.Option()] = "127.0.0.1") -> None:
    """Run Flower, the live dashboard (workers send task events)."""
    settings = load_settings()
    ensure_embedded_redis(settings)
    from workers.celery_app import create_celery_app

    argv = ["flower", f"--port={port or settings.flower_port}", f"--address={address}"]
    if settings.flower_broker_api:
        # RabbitMQ: Flower reads queue lengths from the management API.
        argv.append(f"--broker_api={settings.flower_broker_api}")
    create_celery_app(settings).start(argv)


@cli.command("api")
def api_cmd(
    host: Annotated[str | None, typer.Option(help="Default HOOKLINE_API_HOST (127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Default HOOKLINE_API_PORT (8000).")] = None,
) -> None:
    """Serve the management API (OpenAPI docs at /docs)."""
    import uvicorn

    from app.api import create_app
    from app.api.accesslog import access_log_config

    settings = load_settings()
    app = create_app(hookline_for(settings))
    uvicorn.run(app, host=host or settings.api_host, port=port or settings.api_port,
                log_level=settings.log_level.lower(), proxy_headers=False,
                log_config=access_log_config())


@cli.command()
def demo(
    changes: Annotated[int, typer.Option(help="Crew changes the fleet simulator makes.")] = 60,
    rate: Annotated[float, typer.Option(help="Crew changes per second.")] = 5.0,
    producers: Annotated[int, typer.Option(min=1, max=8, help="`hookline producer` processes.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the fleet and its changes.")] = 7,
    forever: Annotated[bool, typer.Option("--forever", help="Keep changing the fleet until Ctrl-C.")] = False,
    with_flower: Annotated[bool, typer.Option("--flower/--no-flower")] = True,
    with_api: Annotated[bool, typer.Option(
        "--api/--no-api", help="Also serve `hookline api` (the console at /console) on loopback.")] = True,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many seconds.")] = 120.0,
) -> None:
    """Run the pipeline locally on the CrewPass reference domain: crew changes become signed deliveries."""
    # The CrewPass domain is the reference integration the demo shows; Hookline's
    # engine never imports it, only this command does.
    from crewpass.demo import run_demo

    code = run_demo(load_settings(), changes=changes, rate=rate, forever=forever,
                    with_flower=with_flower, producers=producers, timeout=timeout, seed=seed,
                    console=out, with_api=with_api)
    raise typer.Exit(code)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
