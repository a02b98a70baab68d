"""Alerts against real servers on 127.0.0.1: an HTTP webhook receiver and an aiosmtpd SMTP server."""
from __future__ import annotations

import dataclasses
import datetime as dt
import email
import ipaddress
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
import traceback
from dataclasses import replace
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from belleville_mtss.lib import alerts
from belleville_mtss.lib.alerts import Alert, AlertConfig, AlertConfigError, Destination, load_alert_config, send

SECRET_PATH = "/services/T000/B000/s3cretW3bhookT0ken"
PASSWORD = "p@ss:w/rd-s3cret"
ENCODED = PASSWORD.replace("@", "%40").replace("/", "%2F")  # as it must be written in MTSS_ALERT_SMTP_URL
FAST = {"timeout": 0.5, "attempts": 3, "backoff": 0.01}


# --- an incoming-webhook receiver -------------------------------------------------------------------------

class Receiver:
    """Answers POSTs with the queued statuses (then 200), recording each request."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.requests.append({"path": self.path, "status": status, "body": body,
                                          "content_type": self.headers["Content-Type"]})
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "30")
                if status == 302:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{SECRET_PATH}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def webhook_config(url: str, **overrides) -> AlertConfig:
    return replace(load_alert_config({"MTSS_ALERT_WEBHOOK_URL": url}), **{**FAST, **overrides})


def sample_alerts() -> list[Alert]:
    return [
        alerts.blocked_drop("belleville/2025-09-01", "a1b2c3", "ferpa_review_current",
                            "FERPA review is 400 days old"),
        alerts.halted_file("belleville/2025-09-01", "a1b2c3", "SR.csv",
                           "header row does not match Star Reading"),
    ]


def assert_no_secret(caplog, *things) -> None:
    for text in [caplog.text, *map(repr, things)]:
        assert SECRET_PATH not in text and "s3cretW3bhook" not in text
        assert PASSWORD not in text and "s3cret" not in text


# --- webhook ------------------------------------------------------------------------------------------------

def test_one_post_per_alert_with_the_text_as_json(receiver, caplog):
    caplog.set_level(logging.DEBUG)
    config = webhook_config(receiver.url)
    deliveries = [send(a, config) for a in sample_alerts()]

    assert [[d.describe() for d in ds] for ds in deliveries] == [["webhook: sent after 1 attempt(s)"]] * 2
    assert [r["path"] for r in receiver.requests] == [SECRET_PATH, SECRET_PATH]
    assert all(r["content_type"].startswith("application/json") for r in receiver.requests)
    bodies = [json.loads(r["body"]) for r in receiver.requests]
    assert list(bodies[0]) == ["text"]
    assert bodies[0]["text"].splitlines() == [
        "MTSS: drop belleville/2025-09-01 blocked", "Check: ferpa_review_current",
        "Reason: FERPA review is 400 days old", "Drop version: a1b2c3"]
    assert bodies[1]["text"].startswith("MTSS: file SR.csv halted in drop belleville/2025-09-01\n")
    assert_no_secret(caplog, config, deliveries)


def test_500_then_200_is_retried_and_delivered_once(receiver, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.statuses = [500, 503]
    started = time.monotonic()
    [delivery] = send(sample_alerts()[0], webhook_config(receiver.url, backoff=0.2))

    assert delivery.ok and delivery.attempts == 3
    assert [r["status"] for r in receiver.requests] == [500, 503, 200]
    assert time.monotonic() - started >= 0.4  # the backoff between attempts (Apprise's wait=)
    assert_no_secret(caplog, delivery)


def test_429_is_retried(receiver):
    # Apprise retries after its wait=; it does not read Retry-After (our own client did: capped at the backoff).
    receiver.statuses = [429]
    [delivery] = send(sample_alerts()[0], webhook_config(receiver.url))
    assert delivery.ok and delivery.attempts == 2


@pytest.mark.parametrize("status", [400, 404, 302])
def test_a_4xx_or_a_redirect_fails_and_a_redirect_is_never_followed(receiver, caplog, status):
    # Apprise retries every failure up to retry= (our own client stopped at a 4xx: another try gets the same).
    caplog.set_level(logging.DEBUG)
    receiver.statuses = [status] * 3
    [delivery] = send(sample_alerts()[0], webhook_config(receiver.url))

    assert (delivery.status, delivery.reason, delivery.attempts) == ("failed", f"HTTP {status}", 3)
    assert [r["path"] for r in receiver.requests] == [SECRET_PATH] * 3  # the redirect was not followed
    assert_no_secret(caplog, delivery)


def test_a_server_that_never_answers_times_out_within_the_timeout(caplog):
    caplog.set_level(logging.DEBUG)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the connection; nobody ever reads or answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}{SECRET_PATH}"
        started = time.monotonic()
        [delivery] = send(sample_alerts()[0], webhook_config(url, timeout=0.3, attempts=2))
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert (delivery.status, delivery.reason, delivery.attempts) == ("failed", "cannot connect or timed out", 2)
    assert 0.6 <= elapsed < 1.5
    assert_no_secret(caplog, delivery)


def test_connection_refused_is_retried_then_reported_not_raised(caplog):
    caplog.set_level(logging.DEBUG)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    config = webhook_config(f"http://127.0.0.1:{port}{SECRET_PATH}")
    [delivery] = send(sample_alerts()[0], config)
    assert delivery.status == "failed" and delivery.attempts == 3
    assert delivery.reason == "cannot connect or timed out"
    assert_no_secret(caplog, delivery)


def test_a_destination_apprise_cannot_parse_is_a_failed_delivery_that_does_not_quote_the_url(caplog):
    caplog.set_level(logging.DEBUG)
    # past the config check (built by hand): Apprise refuses it when sending
    config = replace(AlertConfig(destinations=(Destination("webhook", f"nosuch://127.0.0.1:9{SECRET_PATH}"),)),
                     **FAST)
    [delivery] = send(sample_alerts()[0], config)
    assert (delivery.status, delivery.reason) == ("failed", "not a URL Apprise can send to")
    assert_no_secret(caplog, delivery)


def test_slack_control_sequences_in_a_file_name_are_escaped(receiver):
    alert = alerts.halted_file("belleville/d1", "v1", "<!channel> & co.csv", "empty file")
    send(alert, webhook_config(receiver.url))
    text = json.loads(receiver.requests[0]["body"])["text"]
    assert "&lt;!channel&gt; &amp; co.csv" in text and "<!channel>" not in text


# --- no student data ----------------------------------------------------------------------------------------

def test_text_with_a_student_looking_email_is_refused_on_every_channel(receiver, smtp_server):
    config = replace(both_config(receiver.url, smtp_server.port), **FAST)
    leaky = alerts.halted_file("belleville/d1", "v1", "students.csv",
                               "duplicate email jdoe42@students.belleville.k12.us")

    deliveries = send(leaky, config)

    assert [(d.channel, d.status) for d in deliveries] == [("webhook", "refused"), ("email", "refused")]
    assert receiver.requests == [] and smtp_server.handler.messages == []


def test_a_configured_address_may_appear(receiver, smtp_server):
    config = replace(both_config(receiver.url, smtp_server.port), **FAST)
    alert = alerts.blocked_drop("belleville/d1", "v1", "ferpa_review_current",
                                "ask data-office@belleville.k12.us to renew the review")
    assert [d.status for d in send(alert, config)] == ["sent", "sent"]


def test_failed_run_names_steps_not_the_error_text():
    alert = alerts.failed_run("0b1c2d3e-run", "ingest_drop", "belleville/d1", ["identity", "warehouse"])
    assert alert.key == "failed_run:0b1c2d3e-run"
    assert "Failed step(s): identity, warehouse" in alert.lines
    with pytest.raises(TypeError):
        alerts.failed_run("r", "j", error="Jane Doe 2011-04-02")  # no parameter to put free text in


def test_the_retries_of_a_drop_versions_failed_receipt_alert_once_and_other_failures_once_per_run():
    """The drop sensor asks again for a drop whose receipt failed (a file rewritten as it was read), up to 8 times;
    each refused run paged "run failed", for a fault whose remedy is to do nothing."""
    from belleville_mtss.report import DropReport, drop_alerts
    receipt = DropReport("belleville/d1", False, failures={"received_drop": "refused: SM.csv changed"})
    keys = {run: drop_alerts(receipt, run, "drop_job", True, "v1")[0].key for run in ("run-1", "run-2")}
    assert keys["run-1"] == keys["run-2"] == "failed_run:belleville/d1:v1:receipt"
    assert drop_alerts(receipt, "run-3", "drop_job", True, "v2")[0].key != keys["run-1"]  # a new version alerts
    assert drop_alerts(receipt, "run-4", "drop_job", True)[0].key == "failed_run:run-4"  # no version known
    later = DropReport("belleville/d1", False, failures={"student_identity_map": "failed"})
    assert drop_alerts(later, "run-5", "drop_job", True, "v1")[0].key == "failed_run:run-5"


def test_a_drop_superseded_as_it_first_arrives_alerts_once_and_its_replays_alert_no_one():
    """A year typed backwards (2016-12-09 for 2026-12-09) was superseded with no alert, and the district, having
    sent a drop, was not overdue either: its newest data was never loaded and no one was told."""
    from belleville_mtss.report import DropReport, drop_alerts
    why = "superseded: the warehouse holds the newer belleville/2026-12-08 (of 2026-12-08) for roster"
    first = DropReport("belleville/2016-12-09", True, checks={"drop_is_newest": False},
                       why={"drop_is_newest": why}, version="v1", arrived=True)
    assert first.outcome == "superseded"
    (alert,) = drop_alerts(first, "run-1", "drop_job", False)
    assert (alert.kind, alert.key) == ("superseded_drop", "superseded_drop:belleville/2016-12-09:v1")
    assert f"Reason: {why}" in alert.lines and "arrived older" in alert.title
    replay = dataclasses.replace(first, arrived=False)  # the version again from staging, or a run of some assets
    assert drop_alerts(replay, "run-2", "drop_job", False) == []


# --- email --------------------------------------------------------------------------------------------------

class Inbox:
    def __init__(self, fail_first: str | None = None):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.fail_first = fail_first

    async def handle_DATA(self, server, session, envelope):
        if self.fail_first:
            answer, self.fail_first = self.fail_first, None
            return answer
        msg = email.message_from_bytes(envelope.original_content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_smtp(handler, **kwargs) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller


@pytest.fixture
def smtp_server():
    controller = start_smtp(Inbox())
    yield controller
    controller.stop()


RECIPIENTS = "data-office@belleville.k12.us, ops@mtss.example.org"


def smtp_config(url: str, to: str = "ops@mtss.example.org") -> AlertConfig:
    return replace(load_alert_config({"MTSS_ALERT_SMTP_URL": url, "MTSS_ALERT_TO": to}), **FAST)


def both_config(webhook_url: str, smtp_port: int) -> AlertConfig:
    return load_alert_config({
        "MTSS_ALERT_WEBHOOK_URL": webhook_url,
        "MTSS_ALERT_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}?from=alerts%40mtss.example.org",
        "MTSS_ALERT_TO": RECIPIENTS,
    })


def test_one_email_per_alert_and_recipient_with_the_title_as_subject(smtp_server):
    # Apprise sends each recipient a message of their own (our own client sent one message to all). The timeout is
    # one a busy machine meets: past FAST's 0.5 s a delivered message was sent again (a retry), five in the inbox.
    config = replace(smtp_config(f"smtp://127.0.0.1:{smtp_server.port}?from=alerts%40mtss.example.org", RECIPIENTS),
                     timeout=10.0)
    sent = sample_alerts()
    deliveries = [send(a, config) for a in sent]

    assert [[(d.channel, d.status) for d in ds] for ds in deliveries] == [[("email", "sent")]] * 2
    inbox = smtp_server.handler.messages
    assert len(inbox) == 4
    to = ["data-office@belleville.k12.us", "ops@mtss.example.org"]
    for (rcpts, msg), (alert, recipient) in zip(inbox, [(a, r) for a in sent for r in to]):
        assert rcpts == [recipient] and msg["To"] == recipient
        assert msg["Subject"] == alert.title
        assert msg["From"] == "alerts@mtss.example.org"
        body = msg.get_content()
        assert all(line in body for line in alert.lines) and alert.key in body


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_with_a_percent_encoded_user_and_password(caplog):
    caplog.set_level(logging.DEBUG)
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login.decode(), auth_data.password.decode()))
        ok = isinstance(auth_data, LoginPassword) and auth_data.password.decode() == PASSWORD
        return AuthResult(success=ok, handled=False)

    inbox = Inbox()
    controller = start_smtp(inbox, authenticator=authenticator, auth_require_tls=False, auth_required=True)
    try:
        url = f"smtp://alert%20bot:p%40ss%3Aw%2Frd-s3cret@127.0.0.1:{controller.port}?from=bot%40mtss.example.org"
        config = smtp_config(url)
        [delivery] = send(sample_alerts()[0], config)
    finally:
        controller.stop()
    assert delivery.ok
    assert logins == [("alert bot", PASSWORD)]
    assert inbox.messages[0][1]["From"] == "bot@mtss.example.org"
    assert_no_secret(caplog, config, delivery)


def test_without_from_the_sender_is_mtss_alerts_at_the_server_unless_it_is_an_ip_address():
    config = load_alert_config(smtp_env("smtp://mail.example.org", "ops@mtss.example.org"))
    assert "mtss-alerts@mail.example.org" in config.addresses
    with pytest.raises(AlertConfigError, match="^MTSS_ALERT_SMTP_URL: .*give from= an address with a domain"):
        load_alert_config(smtp_env("smtp://127.0.0.1:2525", "ops@mtss.example.org"))


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_wrong_password_fails_and_is_not_shown(caplog):
    caplog.set_level(logging.DEBUG)
    controller = start_smtp(Inbox(), authenticator=lambda *a: AuthResult(success=False, handled=False),
                            auth_require_tls=False, auth_required=True)
    try:
        url = f"smtp://bot:{ENCODED}@127.0.0.1:{controller.port}?from=bot%40mtss.example.org"
        config = smtp_config(url)
        [delivery] = send(sample_alerts()[0], config)
    finally:
        controller.stop()
    # Apprise retries it (our own client did not) and says only that it failed
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert_no_secret(caplog, config, delivery)


def test_a_4xx_from_the_mail_server_is_retried_and_delivered_once():
    inbox = Inbox(fail_first="451 try again later")
    controller = start_smtp(inbox)
    try:
        config = replace(smtp_config(f"smtp://127.0.0.1:{controller.port}?from=bot%40mtss.example.org"),
                         timeout=10.0)  # one a busy machine meets: a timed-out delivery is sent again
        [delivery] = send(sample_alerts()[0], config)
    finally:
        controller.stop()
    assert delivery.ok and delivery.attempts == 2
    assert len(inbox.messages) == 1


@pytest.fixture
def tls_files(tmp_path, monkeypatch):
    """A self-signed certificate for 127.0.0.1, trusted through SSL_CERT_FILE as a private CA would be."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mtss-test-smtp")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    return server_ctx


@pytest.mark.parametrize("scheme", ["smtp+starttls", "smtps"])
def test_starttls_and_implicit_tls(tls_files, scheme):
    inbox = Inbox()
    tls = {"tls_context": tls_files, "require_starttls": True} if scheme == "smtp+starttls" \
        else {"ssl_context": tls_files}
    controller = start_smtp(inbox, **tls)
    try:
        config = replace(smtp_config(f"{scheme}://127.0.0.1:{controller.port}?from=bot%40mtss.example.org"),
                         timeout=10.0)  # a TLS handshake on a busy machine: past the timeout, sent again
        [delivery] = send(sample_alerts()[0], config)
    finally:
        controller.stop()
    assert delivery.ok, delivery.describe()
    assert len(inbox.messages) == 1


def test_plain_smtp_to_a_server_that_requires_starttls_fails_without_sending(tls_files):
    inbox = Inbox()
    controller = start_smtp(inbox, tls_context=tls_files, require_starttls=True)
    try:
        config = smtp_config(f"smtp://127.0.0.1:{controller.port}?from=bot%40mtss.example.org")
        [delivery] = send(sample_alerts()[0], config)
    finally:
        controller.stop()
    assert delivery.status == "failed" and inbox.messages == []


# --- one Apprise URL per destination (MTSS_ALERT_URLS) ----------------------------------------------------

@pytest.fixture
def https_receiver(tls_files, monkeypatch):
    """An HTTPS receiver on 127.0.0.1 whose certificate requests trusts (REQUESTS_CA_BUNDLE), as a private CA."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", os.environ["SSL_CERT_FILE"])
    r = Receiver(tls_files)
    yield r
    r.close()


def urls_config(*urls: str) -> AlertConfig:
    return replace(load_alert_config({"MTSS_ALERT_URLS": "\n".join(urls)}), **FAST)


def test_teams_through_a_power_automate_workflow_over_https(https_receiver, caplog):
    caplog.set_level(logging.DEBUG)
    port = https_receiver.server.server_port
    config = urls_config(f"workflows://127.0.0.1:{port}/wf0a1b2c/s3cretSignature")
    alert = sample_alerts()[0]
    [delivery] = send(alert, config)

    assert delivery.describe() == "workflows: sent after 1 attempt(s)"
    [request] = https_receiver.requests
    assert request["path"].startswith("/workflows/wf0a1b2c/triggers/manual/paths/invoke?")
    card = json.loads(request["body"])["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    texts = [block.get("text") for block in card["content"]["body"]]
    assert alert.title in texts
    body = re.sub(r"\\(.)", r"\1", next(t for t in texts if t and t.startswith("Check:")))  # markdown escapes
    assert body.splitlines()[:3] == list(alert.lines[:3]) and alert.key in body
    assert "s3cretSignature" not in caplog.text and "s3cretSignature" not in repr(config)


def test_slack_style_through_a_mattermost_incoming_webhook(receiver, caplog):
    # Apprise's slack:// posts to hooks.slack.com only; Mattermost's incoming webhooks take Slack's payload.
    caplog.set_level(logging.DEBUG)
    config = urls_config(f"mmost://127.0.0.1:{receiver.server.server_port}/s3cretW3bhookT0ken")
    alert = alerts.halted_file("belleville/d1", "v1", "<!channel> & co.csv", "empty file")
    [delivery] = send(alert, config)

    assert delivery.ok
    [request] = receiver.requests
    assert request["path"] == "/hooks/s3cretW3bhookT0ken"
    text = json.loads(request["body"])["text"]
    assert text.startswith("MTSS: file &lt;!channel&gt; &amp; co.csv halted in drop belleville/d1")
    assert "Reason: empty file" in text and "<!channel>" not in text
    assert_no_secret(caplog, config, delivery)


def test_a_generic_json_endpoint(receiver):
    config = urls_config(f"json://127.0.0.1:{receiver.server.server_port}{SECRET_PATH}")
    alert = sample_alerts()[1]
    [delivery] = send(alert, config)

    assert delivery.ok
    body = json.loads(receiver.requests[0]["body"])
    assert (body["title"], body["type"]) == (alert.title, "info")
    assert body["message"].splitlines()[0] == alert.lines[0] and alert.key in body["message"]


def test_email_through_a_mailto_url(smtp_server):
    config = urls_config(f"mailto://127.0.0.1:{smtp_server.port}?smtp=127.0.0.1&mode=insecure"
                         "&from=alerts@mtss.example.org&to=ops@mtss.example.org&format=text")
    alert = alerts.blocked_drop("belleville/d1", "v1", "ferpa_review_current",
                                "ask ops@mtss.example.org to renew the review")  # a configured address may appear
    [delivery] = send(alert, config)

    assert delivery.describe() == "mailto: sent after 1 attempt(s)"
    [(rcpts, msg)] = smtp_server.handler.messages
    assert rcpts == ["ops@mtss.example.org"] and msg["Subject"] == alert.title
    assert all(line in msg.get_content() for line in alert.lines)


def test_every_destination_gets_each_alert_and_a_dead_one_does_not_stop_the_rest(receiver, smtp_server):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = closed.getsockname()[1]
    closed.close()
    config = urls_config(f"json://127.0.0.1:{dead}/gone", f"mmost://127.0.0.1:{receiver.server.server_port}/t0k",
                         f"json://127.0.0.1:{receiver.server.server_port}/j")
    deliveries = send(sample_alerts()[0], config)
    assert [(d.channel, d.status) for d in deliveries] == [("json", "failed"), ("mmost", "sent"), ("json", "sent")]
    assert [r["path"] for r in receiver.requests] == ["/hooks/t0k", "/j"]


UNUSABLE = {"MTSS_ALERT_URLS": "json://ok.example.org/h nosuch://s3cret@x.example.org/y"}


def test_an_unusable_url_is_refused_by_its_place_not_its_text(caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AlertConfigError) as caught:
        load_alert_config(UNUSABLE)
    assert str(caught.value).startswith("MTSS_ALERT_URLS: entry 2 (nosuch://...)")
    assert "s3cret" not in "".join(traceback.format_exception(caught.value)) and "s3cret" not in caplog.text
    # a Slack webhook as Slack gives it is one URL too
    config = load_alert_config({"MTSS_ALERT_URLS": "https://hooks.slack.com/services/T000/B000/s3cret"})
    assert [d.channel for d in config.destinations] == ["https"] and "s3cret" not in config.describe()


# --- configuration ------------------------------------------------------------------------------------------

def test_nothing_set_means_disabled_and_send_does_nothing(receiver):
    config = load_alert_config({})
    assert not config.enabled
    assert config.describe() == (
        "alerts disabled: none of MTSS_ALERT_URLS, MTSS_ALERT_WEBHOOK_URL, MTSS_ALERT_SMTP_URL is set")
    assert send(sample_alerts()[0], config) == []


def test_a_full_configuration():
    config = load_alert_config({
        "MTSS_ALERT_WEBHOOK_URL": "https://hooks.slack.com" + SECRET_PATH,
        "MTSS_ALERT_SMTP_URL": f"smtps://bot:{ENCODED}@mail.example.org",
        "MTSS_ALERT_TO": " ops@mtss.example.org ,data-office@belleville.k12.us,",
        "MTSS_ALERT_OUTAGE_MINUTES": "45",
    })
    assert alerts._parse_smtp_url(f"smtps://bot:{ENCODED}@mail.example.org") == alerts.SmtpServer(
        "smtps", "mail.example.org", 465, "mtss-alerts@mail.example.org", "bot", PASSWORD)
    assert [d.channel for d in config.destinations] == ["webhook", "email"]
    assert set(config.addresses) == {"ops@mtss.example.org", "data-office@belleville.k12.us",
                                     "mtss-alerts@mail.example.org"}
    assert config.outage_minutes == 45
    assert config.describe() == ("alerts: webhook to hooks.slack.com, email via smtps://mail.example.org:465 "
                                 "to 2 recipient(s); drop server outage after 45 min")
    assert "s3cret" not in repr(config)
    assert load_alert_config({"MTSS_ALERT_WEBHOOK_URL": "https://x.example.org/h"}).outage_minutes == 30


def smtp_env(url: str, to: str = "a@b.org") -> dict:
    return {"MTSS_ALERT_SMTP_URL": url, "MTSS_ALERT_TO": to}


@pytest.mark.parametrize("env, variable", [
    ({"MTSS_ALERT_WEBHOOK_URL": "hooks.slack.com" + SECRET_PATH}, "MTSS_ALERT_WEBHOOK_URL"),
    ({"MTSS_ALERT_WEBHOOK_URL": "ftp://hooks.slack.com" + SECRET_PATH}, "MTSS_ALERT_WEBHOOK_URL"),
    ({"MTSS_ALERT_WEBHOOK_URL": "https://hooks.slack.com/T0 00" + SECRET_PATH}, "MTSS_ALERT_WEBHOOK_URL"),
    (smtp_env(f"smtpx://bot:{ENCODED}@mail.example.org"), "MTSS_ALERT_SMTP_URL"),
    (smtp_env(f"smtp://bot:{ENCODED}@mail.example.org:twenty-five"), "MTSS_ALERT_SMTP_URL"),
    # unencoded '@' and '/' in the password: the host is read as 'ss', the port as 'w'
    (smtp_env(f"smtp://bot:{PASSWORD}@mail.example.org"), "MTSS_ALERT_SMTP_URL"),
    (smtp_env(f"smtp://:{ENCODED}@mail.example.org"), "MTSS_ALERT_SMTP_URL"),
    (smtp_env(f"smtp://bot:{ENCODED}@mail.example.org?from=nobody"), "MTSS_ALERT_SMTP_URL"),
    (smtp_env(f"smtp://bot:{ENCODED}@mail.example.org?sender=a%40b.org"), "MTSS_ALERT_SMTP_URL"),
    ({"MTSS_ALERT_SMTP_URL": f"smtp://bot:{ENCODED}@mail.example.org"}, "MTSS_ALERT_TO"),
    (smtp_env(f"smtp://bot:{ENCODED}@mail.example.org", "ops, a@b.org"), "MTSS_ALERT_TO"),
    ({"MTSS_ALERT_TO": "a@b.org"}, "MTSS_ALERT_TO"),
    ({"MTSS_ALERT_WEBHOOK_URL": "https://x.example.org/h", "MTSS_ALERT_OUTAGE_MINUTES": "half an hour"},
     "MTSS_ALERT_OUTAGE_MINUTES"),
    ({"MTSS_ALERT_WEBHOOK_URL": "https://x.example.org/h", "MTSS_ALERT_OUTAGE_MINUTES": "0"},
     "MTSS_ALERT_OUTAGE_MINUTES"),
    ({"MTSS_ALERT_WEBHOOK_URL": "https://x.example.org/h", "MTSS_ALERT_OUTAGE_MINUTES": "nan"},
     "MTSS_ALERT_OUTAGE_MINUTES"),
])
def test_a_malformed_value_names_the_variable_and_hides_secrets(env, variable):
    with pytest.raises(AlertConfigError) as caught:
        load_alert_config(env)
    assert str(caught.value).startswith(variable)
    # the whole traceback a sensor would log, chained exceptions included
    shown = "".join(traceback.format_exception(caught.value))
    assert "s3cret" not in shown and ENCODED not in shown


# --- once per event -----------------------------------------------------------------------------------------

def test_an_outage_alerts_once_after_the_threshold_and_clears_once():
    state, sent, t0 = {}, [], 1_700_000_000.0
    probes = [(0, False), (10, False), (29, False), (30, False), (45, False), (90, False),
              (95, True), (96, True)]
    for minute, reachable in probes:
        alert, state = alerts.track_outage(state, reachable, t0 + minute * 60, "sftp.example.org", 30)
        json.dumps(state)  # it lives in a sensor cursor
        if alert:
            sent.append((minute, alert.kind, alert.key))
    assert sent == [(30, "drop_server_outage", "drop_server_outage:2023-11-14T22:13Z"),
                    (95, "outage_cleared", "outage_cleared:2023-11-14T22:13Z")]
    # a blip shorter than the threshold sends nothing, not even a clearing
    alert, state = alerts.track_outage({}, False, t0, "sftp.example.org", 30)
    assert alerts.track_outage(state, True, t0 + 60, "sftp.example.org", 30) == (None, {})


def test_overdue_districts_once_per_missing_period():
    day, now = 86_400, 1_700_000_000.0
    last = {"belleville": now - 8 * day, "harbor": now - 2 * day, "newtown": None}
    expected = {"belleville": 7, "harbor": 7, "newtown": 14}
    overdue = alerts.overdue_districts(last, expected, now)
    assert [a.title for a in overdue] == [
        "MTSS: district belleville overdue", "MTSS: district newtown overdue"]
    assert overdue[0].lines == ("Last drop: 2023-11-06T22:13Z (8.0 days ago).", "Expected every 7 day(s).")

    sent = alerts.remember([], overdue)
    tomorrow = alerts.overdue_districts(last, expected, now + day)
    assert alerts.unsent(tomorrow, sent) == []  # same missing period, same key: no second alert
    last["belleville"] = now  # a drop arrived, then went quiet again
    later = alerts.overdue_districts(last, expected, now + 8 * day)
    assert [a.title for a in alerts.unsent(later, sent)] == [
        "MTSS: district belleville overdue", "MTSS: district harbor overdue"]  # newtown's "never" was sent


def test_unsent_and_remember_keep_one_per_key_and_a_bounded_cursor():
    a, b = sample_alerts()
    assert alerts.unsent([a, a, b], [b.key]) == [a]
    keys = alerts.remember([f"k{i}" for i in range(5)], [a, b], limit=4)
    assert keys == ["k3", "k4", a.key, b.key]
    assert alerts.remember(keys, [a], limit=4) == keys


def test_an_outage_under_a_minute_says_its_seconds():
    from belleville_mtss.lib.alerts import drop_server_outage
    assert "(16 s)." in drop_server_outage("sftp.example.org", 1_000.0, 1_016.0).lines[0]
    assert "(31 min)." in drop_server_outage("sftp.example.org", 0.0, 31 * 60.0).lines[0]
