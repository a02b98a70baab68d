"""Alerts: what alerts whom, once per event, without student data; Apprise delivers them.

Events: a blocked drop, a halted file, a failed run, the drop server unreachable for longer than
MTSS_ALERT_OUTAGE_MINUTES (and back again), a district overdue. Each Alert carries a dedup key (drop key and
version, run id, outage start, last drop) so that it is sent once: the keys sent are kept (defs/alerting.py).

Where alerts go: MTSS_ALERT_URLS, one Apprise URL per destination (Microsoft Teams through `workflows://`, Slack,
email through `mailto://`, a generic JSON endpoint through `json://`, PagerDuty and the rest:
https://appriseit.com/services/). Apprise (https://github.com/caronc/apprise) writes each service's payload and
protocol, retries and times out; we keep the decisions. The older MTSS_ALERT_WEBHOOK_URL (a Slack-compatible
webhook: one {"text": ...} post) and MTSS_ALERT_SMTP_URL with MTSS_ALERT_TO keep working: each becomes one
Apprise URL.

No student data: the builders below take only district keys, drop keys, versions, file names, reasons, counts
and check names, and `send` refuses text holding an '@' that is not a configured address (an email slipping
in).

Plain Python, no Dagster: sensors call `load_alert_config` once and `send` per alert. `send` never raises for
a delivery problem; it returns one Delivery per destination, so a dead webhook never fails a sensor.
Secrets: a destination URL (a webhook's path, a password) never reaches a log line, an error message or a repr;
Apprise's and urllib3's debug lines, which quote one, are not emitted.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlencode, urlsplit

if TYPE_CHECKING:
    import apprise

log = logging.getLogger(__name__)
# Below WARNING, Apprise logs each destination's URL and payload, and urllib3 each request's path: a webhook's
# path is its secret. Their warnings name a host only.
_apprise_log = logging.getLogger("apprise")
_apprise_log.setLevel(logging.WARNING)
logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)


def _parsed(url: str, asset: apprise.AppriseAsset | None = None):
    """Apprise's service for a URL, or None; Apprise's complaint about a URL it cannot parse quotes its user
    part (a token, for some services), so it is not logged: the caller says what is wrong."""
    import apprise  # here, not at import: only a configured or sent alert needs it (0.09 s of each start)
    level = _apprise_log.level
    _apprise_log.setLevel(logging.CRITICAL + 1)
    try:
        return apprise.Apprise.instantiate(url, asset=asset)
    finally:
        _apprise_log.setLevel(level)

KINDS = (
    "blocked_drop", "halted_file", "failed_run", "drop_server_outage", "outage_cleared", "district_overdue",
    "sensor_failing", "sensor_recovered", "superseded_drop",
)
SMTP_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
# Our smtp URL schemes as Apprise's email: schema and mode.
_MAIL_MODES = {"smtp": ("mailto", "insecure"), "smtp+starttls": ("mailtos", "starttls"), "smtps": ("mailtos", "ssl")}
# Chat services that read <...> as links and mentions (<!channel>).
SLACK_STYLE = frozenset({"webhook", "slack", "mmost", "mmosts", "rocket", "rockets"})
EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})
DEFAULT_OUTAGE_MINUTES = 30.0
MAX_TEXT_CHARS = 3_000  # well under Slack's and Teams' message limits
_ADDRESS = re.compile(r"^[^@\s,<>\"]+@[^@\s,<>\"]+$")


class AlertConfigError(ValueError):
    """A malformed MTSS_ALERT_* value; the message names the variable and never repeats a secret."""


@dataclass(frozen=True)
class SmtpServer:
    scheme: str  # smtp, smtp+starttls or smtps
    host: str
    port: int
    sender: str
    user: str = ""
    password: str = field(default="", repr=False)

    def describe(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


@dataclass(frozen=True)
class Destination:
    """One place alerts go: an Apprise URL (a credential, never shown) and what may be said of it."""

    channel: str  # webhook, email, or the Apprise scheme given (workflows, json, slack, mailtos, ...)
    url: str = field(repr=False)
    shown: str = ""  # host, or for email the server and the number of recipients

    def describe(self) -> str:
        return f"{self.channel} to {self.shown}" if self.channel != "email" else f"email via {self.shown}"


@dataclass(frozen=True)
class AlertConfig:
    destinations: tuple[Destination, ...] = ()
    addresses: tuple[str, ...] = ()  # the addresses an alert may name: ours, never a student's
    outage_minutes: float = DEFAULT_OUTAGE_MINUTES
    # Per destination: up to `attempts` tries `backoff` seconds apart (Apprise's retry= and wait=), each with
    # this timeout (Apprise's cto= and rto=); a URL's own retry=, wait=, cto= or rto= wins.
    timeout: float = 5.0
    attempts: int = 3
    backoff: float = 1.0

    @property
    def enabled(self) -> bool:
        return bool(self.destinations)

    def describe(self) -> str:
        """One log-able line; a destination shows its host only (the path is the secret)."""
        if not self.enabled:
            return "alerts disabled: none of MTSS_ALERT_URLS, MTSS_ALERT_WEBHOOK_URL, MTSS_ALERT_SMTP_URL is set"
        parts = ", ".join(d.describe() for d in self.destinations)
        return f"alerts: {parts}; drop server outage after {self.outage_minutes:g} min"


def load_alert_config(env: Mapping[str, str]) -> AlertConfig:
    """From MTSS_ALERT_URLS, MTSS_ALERT_WEBHOOK_URL, MTSS_ALERT_SMTP_URL, MTSS_ALERT_TO, MTSS_ALERT_OUTAGE_MINUTES."""
    webhook = (env.get("MTSS_ALERT_WEBHOOK_URL") or "").strip()
    smtp_url = (env.get("MTSS_ALERT_SMTP_URL") or "").strip()
    recipients = _parse_recipients(env.get("MTSS_ALERT_TO") or "")
    if webhook:
        _check_webhook(webhook)
    smtp = _parse_smtp_url(smtp_url) if smtp_url else None
    if smtp and not recipients:
        raise AlertConfigError("MTSS_ALERT_TO is required when MTSS_ALERT_SMTP_URL is set")
    if recipients and not smtp:
        raise AlertConfigError("MTSS_ALERT_TO is set but MTSS_ALERT_SMTP_URL is not: no server to send with")
    destinations = [_apprise_destination(i, url)
                    for i, url in enumerate((env.get("MTSS_ALERT_URLS") or "").split(), start=1)]
    if webhook:
        destinations.append(_webhook_destination(webhook))
    if smtp:
        destinations.append(_smtp_destination(smtp, recipients))
    addresses = recipients + ((smtp.sender,) if smtp else ()) + tuple(
        a for d in destinations if d.channel in EMAIL_SCHEMES for a in _addresses_in(d.url))
    return AlertConfig(tuple(destinations), addresses, _parse_minutes(env.get("MTSS_ALERT_OUTAGE_MINUTES")))


def _apprise_destination(n: int, url: str) -> Destination:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    service = _parsed(url)
    if service is None:
        # The URL is a credential: name its place and scheme, never its text.
        raise AlertConfigError(f"MTSS_ALERT_URLS: entry {n} ({scheme or 'no scheme'}://...) is not a URL Apprise "
                               "can send to; see https://appriseit.com/services/")
    host = getattr(service, "host", None) or getattr(service, "service_name", scheme)
    return Destination(scheme, url, str(host))


def _check_webhook(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        # The value itself is a credential: say what is wrong, not what it is.
        raise AlertConfigError("MTSS_ALERT_WEBHOOK_URL must be an http:// or https:// URL with a host "
                               "and no spaces")


def _webhook_destination(url: str) -> Destination:
    """MTSS_ALERT_WEBHOOK_URL as Apprise's generic JSON: the one {"text": ...} post it always was."""
    parts = urlsplit(url)
    # Apprise sends `-name` as a query parameter of the post, renames `:message` and drops the other fields.
    query = [(f"-{k}", v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    query += [(":message", "text"), (":version", ""), (":title", ""), (":attachments", ""), (":type", "")]
    schema = "jsons" if parts.scheme == "https" else "json"
    return Destination("webhook", f"{schema}://{parts.netloc}{parts.path or '/'}?{urlencode(query)}",
                       parts.hostname)


def _parse_smtp_url(url: str) -> SmtpServer:
    what = "MTSS_ALERT_SMTP_URL"
    parts = urlsplit(url)
    if parts.scheme not in SMTP_SCHEMES:
        raise AlertConfigError(f"{what} must start with smtp://, smtp+starttls:// or smtps://")
    try:
        port = parts.port or SMTP_SCHEMES[parts.scheme]
    except ValueError:
        raise AlertConfigError(f"{what} has a port that is not a number from 0 to 65535") from None
    if not parts.hostname:
        raise AlertConfigError(f"{what} has no host")
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    if bool(user) != bool(password):
        raise AlertConfigError(f"{what} must give both a user and a password, or neither")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"from"})
    if unknown:
        raise AlertConfigError(f"{what} has unknown parameter(s) {', '.join(unknown)} (only from= is read)")
    sender = query.get("from", [f"mtss-alerts@{parts.hostname}"])[-1].strip()
    if not _ADDRESS.match(sender):
        raise AlertConfigError(f"{what}: from= is not an email address")
    return SmtpServer(parts.scheme, parts.hostname, port, sender, user, password)


def _smtp_destination(smtp: SmtpServer, recipients: tuple[str, ...]) -> Destination:
    """MTSS_ALERT_SMTP_URL and MTSS_ALERT_TO as Apprise's email: the same server, TLS, login and sender."""
    schema, mode = _MAIL_MODES[smtp.scheme]
    query = {"smtp": smtp.host, "mode": mode, "from": smtp.sender, "to": ",".join(recipients), "format": "text"}
    if smtp.user:
        query.update(user=smtp.user, **{"pass": smtp.password})
    url = f"{schema}://{smtp.host}:{smtp.port}?{urlencode(query, quote_via=quote)}"
    if _parsed(url) is None:
        # Apprise sends only from a sender with a domain name; mtss-alerts@192.0.2.1 is not one.
        raise AlertConfigError("MTSS_ALERT_SMTP_URL: Apprise cannot send with it; where the host is an IP "
                               "address, give from= an address with a domain name")
    return Destination("email", url, f"{smtp.describe()} to {len(recipients)} recipient(s)")


def _addresses_in(url: str) -> list[str]:
    """The sender and recipients an email destination names (to=, cc=, bcc=, from=)."""
    query = parse_qs(urlsplit(url).query)
    values = [v for k in ("to", "cc", "bcc", "from") for v in query.get(k, [])]
    return [a.strip() for v in values for a in v.split(",") if _ADDRESS.match(a.strip())]


def _parse_recipients(raw: str) -> tuple[str, ...]:
    recipients = tuple(a.strip() for a in raw.split(",") if a.strip())
    bad = sum(1 for a in recipients if not _ADDRESS.match(a))
    if bad:
        raise AlertConfigError(f"MTSS_ALERT_TO: {bad} entry(ies) are not email addresses (comma-separated)")
    return recipients


def _parse_minutes(raw: str | None) -> float:
    if raw is None or not raw.strip():
        return DEFAULT_OUTAGE_MINUTES
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if not minutes > 0 or minutes == float("inf"):
        raise AlertConfigError(f"MTSS_ALERT_OUTAGE_MINUTES must be a positive number of minutes, not {raw!r}")
    return minutes


# --- Alerts: only our own identifiers go in ---------------------------------------------------------------

@dataclass(frozen=True)
class Alert:
    kind: str
    key: str  # one alert per key: the keys sent are kept in the instance (defs/alerting.py send_once)
    title: str
    lines: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}")

    @property
    def text(self) -> str:
        return "\n".join((self.title, *self.lines))


def blocked_drop(drop_key: str, version: str, check_name: str, reason: str) -> Alert:
    """A drop stopped by a blocking asset check (for example ferpa_review_current): nothing was written."""
    return Alert("blocked_drop", f"blocked_drop:{drop_key}:{version}", f"MTSS: drop {drop_key} blocked",
                 (f"Check: {check_name}", f"Reason: {reason}", f"Drop version: {version}"))


def superseded_drop(drop_key: str, version: str, reason: str) -> Alert:
    """A drop that arrived older than what the warehouse holds of its district: nothing of it was written. On
    purpose (a late or back-filled drop), nothing is wrong; a year or month mistyped in its name hides the district's
    newest data, which no other alert would say (the district is not overdue: it sent a drop)."""
    return Alert("superseded_drop", f"superseded_drop:{drop_key}:{version}",
                 f"MTSS: drop {drop_key} arrived older than the district's data",
                 (f"Reason: {reason}", f"Drop version: {version}",
                  "If the date in its name is mistyped, put its files under a drop named with its real date and run "
                  "it; a late or back-filled drop needs nothing."))


def halted_file(drop_key: str, version: str, file_name: str, reason: str) -> Alert:
    """A file refused as a whole (the rest of the drop may still load)."""
    return Alert("halted_file", f"halted_file:{drop_key}:{version}:{file_name}",
                 f"MTSS: file {file_name} halted in drop {drop_key}",
                 (f"Reason: {reason}", f"Drop version: {version}"))


def failed_run(run_id: str, job_name: str, drop_key: str | None = None,
               failed_steps: Sequence[str] = (), once_per: str | None = None) -> Alert:
    """Names the failed steps, not the error text: an exception message may quote a cell value. One alert per
    run, or per `once_per` where the runs of one thing fail alike (the retries of a drop version's receipt)."""
    lines = [f"Job: {job_name}", f"Run: {run_id}"]
    if drop_key:
        lines.append(f"Drop: {drop_key}")
    if failed_steps:
        lines.append(f"Failed step(s): {', '.join(failed_steps)}")
    lines.append("Details are in the Dagster UI run log.")
    return Alert("failed_run", f"failed_run:{once_per or run_id}", f"MTSS: run of {job_name} failed", tuple(lines))


def drop_server_outage(server: str, down_since: float, now: float) -> Alert:
    """server: a host name (not sftp://user@host, whose '@' would be refused)."""
    seconds = now - down_since
    took = f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"
    return Alert("drop_server_outage", f"drop_server_outage:{_iso(down_since)}",
                 f"MTSS: drop server {server} unreachable",
                 (f"Unreachable since {_iso(down_since)} ({took}).",
                  "New drops are not picked up until it answers again."))


def outage_cleared(server: str, down_since: float, now: float) -> Alert:
    return Alert("outage_cleared", f"outage_cleared:{_iso(down_since)}",
                 f"MTSS: drop server {server} reachable again",
                 (f"Unreachable from {_iso(down_since)} to {_iso(now)}.",))


def track_sensor_failure(state: Mapping, error: str | None, now: float, sensor: str) -> tuple[Alert | None, dict]:
    """One tick of a sensor -> (alert to send or None, next state). The first failed tick alerts (a failing sensor
    picks up no drop, and its ticks are red only in the UI); later failures do not, whatever their error, until a
    tick succeeds, which sends a recovery. error: the failure's one-line summary, None for a good tick."""
    since = state.get("failing_since")
    if error is None:
        return (Alert("sensor_recovered", f"sensor_recovered:{sensor}:{_iso(since)}",
                      f"MTSS: sensor {sensor} working again",
                      (f"Its ticks failed from {_iso(since)} to {_iso(now)}.",)) if since else None), {}
    if since is not None:
        return None, dict(state)
    return (Alert("sensor_failing", f"sensor_failing:{sensor}:{_iso(now)}", f"MTSS: sensor {sensor} failing",
                  (f"Its tick failed at {_iso(now)}: {error}", "No new drop is picked up until a tick succeeds; "
                   "the error of each tick is on the sensor's page in the Dagster UI.")),
            {"failing_since": now})


def district_overdue(district: str, last_drop: float | None, expected_every_days: float, now: float) -> Alert:
    """Keyed by the last drop seen, so one alert per missing period, not one per day."""
    seen = _iso(last_drop) if last_drop is not None else "never"
    since = f"Last drop: {seen}" + (f" ({(now - last_drop) / 86_400:.1f} days ago)." if last_drop else ".")
    return Alert("district_overdue", f"district_overdue:{district}:{seen}",
                 f"MTSS: district {district} overdue",
                 (since, f"Expected every {expected_every_days:g} day(s)."))


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


# --- State kept between ticks (JSON-friendly) --------------------------------------------------------

def track_outage(state: Mapping, reachable: bool, now: float, server: str,
                 outage_minutes: float) -> tuple[Alert | None, dict]:
    """One probe of the drop server -> (alert to send or None, next state).

    An outage alerts once, after outage_minutes of failed probes; when the server answers again an
    outage_cleared follows, only if the outage was alerted. state: {} or {"down_since": t, "alerted": bool}.
    """
    down_since, alerted = state.get("down_since"), bool(state.get("alerted"))
    if reachable:
        return (outage_cleared(server, down_since, now) if alerted else None), {}
    if down_since is None:
        return None, {"down_since": now, "alerted": False}
    if not alerted and now - down_since >= outage_minutes * 60:
        return drop_server_outage(server, down_since, now), {"down_since": down_since, "alerted": True}
    return None, {"down_since": down_since, "alerted": alerted}


def overdue_districts(last_drops: Mapping[str, float | None], expected_every_days: Mapping[str, float],
                      now: float) -> list[Alert]:
    """Districts whose last drop (epoch seconds, None if never) is older than their expected interval.

    A district without an expected interval is never overdue.
    """
    return [district_overdue(district, last_drops.get(district), days, now)
            for district, days in sorted(expected_every_days.items())
            if is_overdue(last_drops.get(district), days, now)]


def is_overdue(last_drop: float | None, expected_every_days: float | None, now: float) -> bool:
    """No drop for longer than expected (or none ever); never without an expected interval."""
    if not expected_every_days:
        return False
    return last_drop is None or now - last_drop > expected_every_days * 86_400


def unsent(alerts: Iterable[Alert], sent_keys: Collection[str]) -> list[Alert]:
    """The alerts whose key was not sent yet, each key once."""
    fresh, keys = [], set(sent_keys)
    for a in alerts:
        if a.key not in keys:
            keys.add(a.key)
            fresh.append(a)
    return fresh


def remember(sent_keys: Sequence[str], alerts: Iterable[Alert], limit: int = 1_000) -> list[str]:
    """sent_keys plus the alerts' keys, oldest dropped past limit so the kept list stays small."""
    keys = list(sent_keys) + [a.key for a in alerts if a.key not in sent_keys]
    return keys[-limit:]


# --- Delivery ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Delivery:
    channel: str  # the destination's channel: webhook, email, workflows, json, ...
    status: str  # sent, failed or refused
    reason: str = ""
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "sent"

    def describe(self) -> str:
        reason = f" ({self.reason})" if self.reason else ""
        return f"{self.channel}: {self.status}{reason} after {self.attempts} attempt(s)"


def send(alert: Alert, config: AlertConfig) -> list[Delivery]:
    """Deliver one alert to every destination; never raises for a delivery problem."""
    if _names_a_stranger(alert, config):
        log.error("alert %s refused: its text holds an '@' that is not a configured address", alert.kind)
        reason = "text holds an '@' that is not a configured address"
        return [Delivery(d.channel, "refused", reason) for d in config.destinations]
    deliveries = []
    for destination in config.destinations:
        delivery = _deliver(alert, destination, config)
        (log.info if delivery.ok else log.warning)("alert %s %s", alert.key, delivery.describe())
        deliveries.append(delivery)
    return deliveries


def _names_a_stranger(alert: Alert, config: AlertConfig) -> bool:
    text = f"{alert.text}\n{alert.key}"  # everything that leaves: the key goes in the body
    for address in config.addresses:
        text = re.sub(re.escape(address), "", text, flags=re.IGNORECASE)
    return "@" in text


def rendered(alert: Alert, destination: Destination) -> tuple[str, str]:
    """(title, body) for one destination: the legacy webhook's one text field, or a title and a body that ends
    with the alert's kind and key."""
    if destination.channel == "webhook":
        title, body = "", alert.text
    else:
        title, body = alert.title, "\n".join(alert.lines) + f"\n\n({alert.kind}, {alert.key})"
    if destination.channel in SLACK_STYLE:
        # Slack reads <...> as links and mentions (<!channel>); a file name must not ping a whole channel.
        title, body = _slack_escape(title), _slack_escape(body)
    return title, body[:MAX_TEXT_CHARS]


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _deliver(alert: Alert, destination: Destination, config: AlertConfig) -> Delivery:
    import apprise
    # A webhook that redirects is misconfigured: following it would re-send the alert elsewhere.
    asset = apprise.AppriseAsset(app_id="MTSS alerts", default_service_retry=max(0, config.attempts - 1),
                                 default_service_wait=config.backoff, http_redirects=False)
    try:
        service = _parsed(destination.url, asset)
        if service is None:
            return Delivery(destination.channel, "failed", "not a URL Apprise can send to", 0)
        given = parse_qs(urlsplit(destination.url).query)
        if "cto" not in given:
            service.socket_connect_timeout = config.timeout
        if "rto" not in given:
            service.socket_read_timeout = config.timeout
        # Apprise spaces one service's requests (5.5 s for email), retries included: no more than our backoff.
        service.request_rate_per_sec = min(service.request_rate_per_sec, config.backoff)
        sender = apprise.Apprise(asset=asset)
        sender.add(service)
        title, body = rendered(alert, destination)
        result = sender.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
        [outcome] = result.results
    except Exception as e:  # a bug of ours or Apprise's must not fail the sensor; its text may quote the URL
        return Delivery(destination.channel, "failed", f"unexpected {type(e).__name__}", 1)
    attempts = len(outcome.attempts)
    if outcome:
        return Delivery(destination.channel, "sent", attempts=attempts)
    return Delivery(destination.channel, "failed", _reason(outcome), attempts)


_HTTP_STATUS = re.compile(r"error=(\d{3})\b")


def _reason(outcome) -> str:
    """Why the last attempt failed, in our own words: Apprise's log text can quote the URL."""
    import apprise
    if not outcome.attempts:
        return "not attempted"
    last = outcome.attempts[-1]  # a NotifyAttempt is falsy when it failed
    if last.status == apprise.AppriseResultStatus.TIMEOUT:
        return "timed out"
    messages = " ".join(str(entry.message) for entry in last)
    if status := _HTTP_STATUS.search(messages):
        return f"HTTP {status.group(1)}"
    if "connection error" in messages.lower():
        return "cannot connect or timed out"
    return "not delivered"
