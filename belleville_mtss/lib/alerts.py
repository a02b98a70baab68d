"""Alerts: one notification per event, to a Slack-compatible incoming webhook and/or by email.

Events: a blocked drop, a halted file, a failed run, the drop server unreachable for longer than
MTSS_ALERT_OUTAGE_MINUTES (and back again), a district overdue. Each Alert carries a dedup key (drop key and
version, run id, outage start, last drop) so that it is sent once: the keys sent are kept (defs/alerting.py).

No student data: the builders below take only district keys, drop keys, versions, file names, reasons, counts
and check names, and `send` refuses text holding an '@' that is not a configured address (an email slipping
in).

Plain Python, no Dagster: sensors call `load_alert_config` once and `send` per alert. `send` never raises for
a delivery problem; it returns one Delivery per channel, so a dead webhook never fails a sensor.
Secrets: the webhook URL (a Slack webhook URL is a credential) and the SMTP password never reach a log line,
an error message or a repr.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import partial
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

KINDS = (
    "blocked_drop", "halted_file", "failed_run", "drop_server_outage", "outage_cleared", "district_overdue",
)
SMTP_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
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
class AlertConfig:
    webhook_url: str | None = field(default=None, repr=False)
    smtp: SmtpServer | None = None
    recipients: tuple[str, ...] = ()
    outage_minutes: float = DEFAULT_OUTAGE_MINUTES
    # Per channel: up to `attempts` tries, sleeping backoff, 2*backoff, ... between them. The timeout is
    # urllib's and smtplib's, per socket operation. With these defaults a dead channel costs about 20 s.
    timeout: float = 5.0
    attempts: int = 3
    backoff: float = 1.0

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url or self.smtp)

    @property
    def addresses(self) -> tuple[str, ...]:
        """The addresses an alert may name: ours, never a student's."""
        return self.recipients + ((self.smtp.sender,) if self.smtp else ())

    def describe(self) -> str:
        """One log-able line; the webhook shows its host only (the path is the secret)."""
        if not self.enabled:
            return "alerts disabled: neither MTSS_ALERT_WEBHOOK_URL nor MTSS_ALERT_SMTP_URL is set"
        parts = []
        if self.webhook_url:
            parts.append(f"webhook to {urlsplit(self.webhook_url).hostname}")
        if self.smtp:
            parts.append(f"email via {self.smtp.describe()} to {len(self.recipients)} recipient(s)")
        return f"alerts: {', '.join(parts)}; drop server outage after {self.outage_minutes:g} min"


def load_alert_config(env: Mapping[str, str]) -> AlertConfig:
    """From MTSS_ALERT_WEBHOOK_URL, MTSS_ALERT_SMTP_URL, MTSS_ALERT_TO and MTSS_ALERT_OUTAGE_MINUTES."""
    webhook = (env.get("MTSS_ALERT_WEBHOOK_URL") or "").strip() or None
    smtp_url = (env.get("MTSS_ALERT_SMTP_URL") or "").strip()
    recipients = _parse_recipients(env.get("MTSS_ALERT_TO") or "")
    if webhook:
        _check_webhook(webhook)
    smtp = _parse_smtp_url(smtp_url) if smtp_url else None
    if smtp and not recipients:
        raise AlertConfigError("MTSS_ALERT_TO is required when MTSS_ALERT_SMTP_URL is set")
    if recipients and not smtp:
        raise AlertConfigError("MTSS_ALERT_TO is set but MTSS_ALERT_SMTP_URL is not: no server to send with")
    return AlertConfig(webhook, smtp, recipients, _parse_minutes(env.get("MTSS_ALERT_OUTAGE_MINUTES")))


def _check_webhook(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        # The value itself is a credential: say what is wrong, not what it is.
        raise AlertConfigError("MTSS_ALERT_WEBHOOK_URL must be an http:// or https:// URL with a host "
                               "and no spaces")


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


def halted_file(drop_key: str, version: str, file_name: str, reason: str) -> Alert:
    """A file refused as a whole (the rest of the drop may still load)."""
    return Alert("halted_file", f"halted_file:{drop_key}:{version}:{file_name}",
                 f"MTSS: file {file_name} halted in drop {drop_key}",
                 (f"Reason: {reason}", f"Drop version: {version}"))


def failed_run(run_id: str, job_name: str, drop_key: str | None = None,
               failed_steps: Sequence[str] = ()) -> Alert:
    """Names the failed steps, not the error text: an exception message may quote a cell value."""
    lines = [f"Job: {job_name}", f"Run: {run_id}"]
    if drop_key:
        lines.append(f"Drop: {drop_key}")
    if failed_steps:
        lines.append(f"Failed step(s): {', '.join(failed_steps)}")
    lines.append("Details are in the Dagster UI run log.")
    return Alert("failed_run", f"failed_run:{run_id}", f"MTSS: run of {job_name} failed", tuple(lines))


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
    channel: str  # webhook or email
    status: str  # sent, failed or refused
    reason: str = ""
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "sent"

    def describe(self) -> str:
        reason = f" ({self.reason})" if self.reason else ""
        return f"{self.channel}: {self.status}{reason} after {self.attempts} attempt(s)"


class _Transient(Exception):
    """Worth another try: connection refused, timeout, HTTP 429 or 5xx, SMTP 4xx."""

    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.wait = wait  # a server's Retry-After, when it gave one


class _Permanent(Exception):
    """Another try gives the same answer: HTTP 4xx, SMTP 5xx, refused credentials."""


def send(alert: Alert, config: AlertConfig, sleep: Callable[[float], None] = time.sleep) -> list[Delivery]:
    """Deliver one alert on every configured channel; never raises for a delivery problem."""
    channels = [c for c, on in (("webhook", config.webhook_url), ("email", config.smtp)) if on]
    if _names_a_stranger(alert, config):
        log.error("alert %s refused: its text holds an '@' that is not a configured address", alert.kind)
        reason = "text holds an '@' that is not a configured address"
        return [Delivery(c, "refused", reason) for c in channels]
    deliveries = []
    for channel in channels:
        delivery = _with_retries(channel, partial(_SENDERS[channel], alert, config), config, sleep)
        (log.info if delivery.ok else log.warning)("alert %s %s", alert.key, delivery.describe())
        deliveries.append(delivery)
    return deliveries


def _names_a_stranger(alert: Alert, config: AlertConfig) -> bool:
    text = f"{alert.text}\n{alert.key}"  # everything that leaves: the key goes in the email body
    for address in config.addresses:
        text = re.sub(re.escape(address), "", text, flags=re.IGNORECASE)
    return "@" in text


def _with_retries(channel: str, attempt: Callable[[], None], config: AlertConfig,
                  sleep: Callable[[float], None]) -> Delivery:
    attempts = max(1, config.attempts)
    for n in range(1, attempts + 1):
        try:
            attempt()
            return Delivery(channel, "sent", attempts=n)
        except _Permanent as e:
            return Delivery(channel, "failed", str(e), n)
        except _Transient as e:
            if n == attempts:
                return Delivery(channel, "failed", str(e), n)
            backoff = config.backoff * 2 ** (n - 1)
            # Honour Retry-After, but never past the longest backoff: a sensor tick has a time limit.
            sleep(min(max(backoff, e.wait or 0.0), config.backoff * 2 ** (attempts - 1)))
        except Exception as e:  # a bug of ours must not fail the sensor either; its text may quote the URL
            return Delivery(channel, "failed", f"unexpected {type(e).__name__}", n)
    raise AssertionError("unreachable")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is misconfigured; following it would re-send the alert elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def webhook_payload(alert: Alert) -> dict:
    """{"text": ...}: what Slack incoming webhooks take, and Teams' Office 365 connector webhooks too."""
    return {"text": _slack_escape(alert.text[:MAX_TEXT_CHARS])}


def _slack_escape(text: str) -> str:
    # Slack reads <...> as links and mentions (<!channel>); a file name must not ping a whole channel.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _post_webhook(alert: Alert, config: AlertConfig) -> None:
    body = json.dumps(webhook_payload(alert)).encode()
    request = urllib.request.Request(config.webhook_url, data=body, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
    # Reasons are built here, never from the exception text: urllib's may quote the URL.
    try:
        with _opener.open(request, timeout=config.timeout) as response:
            response.read()
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 429 or e.code >= 500:
            raise _Transient(f"HTTP {e.code}", _retry_after(e.headers.get("Retry-After"))) from None
        raise _Permanent(f"HTTP {e.code}") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, (TimeoutError, socket.timeout)):
            raise _Transient("timed out") from None
        raise _Transient(f"cannot connect ({type(e.reason).__name__})") from None
    except (TimeoutError, socket.timeout):
        raise _Transient("timed out") from None
    except (ConnectionError, OSError) as e:
        raise _Transient(f"connection failed ({type(e).__name__})") from None


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: the backoff will do


def email_message(alert: Alert, config: AlertConfig) -> EmailMessage:
    smtp = config.smtp
    msg = EmailMessage()
    msg["Subject"] = alert.title
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(config.recipients)
    msg["Date"] = formatdate(localtime=False)
    # Our own domain: make_msgid's default looks the machine's name up in DNS, which can hang.
    msg["Message-ID"] = make_msgid("mtss-alert", domain=smtp.sender.rsplit("@", 1)[1])
    body = "\n".join(alert.lines)[:MAX_TEXT_CHARS]
    msg.set_content(f"{body}\n\n({alert.kind}, {alert.key})\n")
    return msg


def _send_email(alert: Alert, config: AlertConfig) -> None:
    smtp = config.smtp
    try:
        with _smtp_connection(smtp, config.timeout) as client:
            if smtp.user:
                client.login(smtp.user, smtp.password)
            refused = client.send_message(email_message(alert, config))
    except smtplib.SMTPAuthenticationError as e:
        raise _Permanent(f"SMTP login refused ({e.smtp_code})") from None
    except smtplib.SMTPRecipientsRefused:
        raise _Permanent("every recipient refused") from None
    except smtplib.SMTPResponseException as e:
        if 400 <= e.smtp_code < 500:
            raise _Transient(f"SMTP {e.smtp_code}") from None
        raise _Permanent(f"SMTP {e.smtp_code}") from None
    except smtplib.SMTPNotSupportedError:
        raise _Permanent("SMTP server does not offer what the URL asks (STARTTLS or AUTH)") from None
    except ssl.SSLError as e:
        raise _Permanent(f"TLS failed ({e.reason or type(e).__name__})") from None
    except (TimeoutError, socket.timeout):
        raise _Transient("timed out") from None
    except (smtplib.SMTPException, OSError) as e:
        raise _Transient(f"connection failed ({type(e).__name__})") from None
    if refused:
        log.warning("alert %s: %d of %d recipient(s) refused",
                    alert.key, len(refused), len(config.recipients))


def _smtp_connection(smtp: SmtpServer, timeout: float) -> smtplib.SMTP:
    if smtp.scheme == "smtps":
        return smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=ssl.create_default_context())
    client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
    if smtp.scheme == "smtp+starttls":
        try:
            client.starttls(context=ssl.create_default_context())
        except BaseException:
            client.close()
            raise
    return client


_SENDERS = {"webhook": _post_webhook, "email": _send_email}
