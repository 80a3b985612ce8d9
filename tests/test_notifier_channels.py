"""Rendering and the three delivery channels, against real receivers on loopback."""
import asyncio
import hashlib
import hmac
import json
import socket
import time
from dataclasses import replace
from datetime import datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime

import pytest

from pipeline.notifier.channels import (Permanent, Transient, retry_after, send_email, send_slack, send_webhook,
                                        verify_signature)
from pipeline.notifier.messages import Notification, duration, num, render
from pipeline.outbound import Outbound
from tests.receivers import (Reply, SmtpServer, free_port, http_receiver, smtp_server,  # noqa: F401 (fixtures)
                             tls_certificate)

T0 = 1796161200000  # 2026-12-01 21:40:00 UTC
LINK = "http://127.0.0.1:8000/v1/applications/app_1"
FIRING = Notification(id="tr_3f2a", kind="firing", rule_id="alert_1", rule_name="High Error Rate",
                      subject_kind="application", subject_id="app_1", subject_name="My Application",
                      metric="error_rate", aggregation="mean", operator=">", threshold=0.05, window="5m",
                      value=0.08000000001, started_at=T0, at=T0, link=LINK)
INTERVENTION = Notification(id="tr_9c1d", kind="intervention", rule_id=None,
                            rule_name="Burnout risk detected \N{EM DASH} loop frequency spike",
                            subject_kind="agent", subject_id="support-bot", subject_name="support-bot",
                            metric=None, aggregation=None, operator=None, threshold=None, window=None, value=None,
                            started_at=T0, at=T0, link="http://127.0.0.1:8000/api/agents/support-bot",
                            severity="high", details="Loop frequency 3.2x its 7-day baseline")
LOOPBACK = ["127.0.0.0/8"]
SECRET = "whsec_test"
# SmtpServer(user=...) without STARTTLS takes AUTH in the clear, which aiosmtpd warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


# --- rendering -------------------------------------------------------------------------------

def test_firing_renders_every_part():
    r = render(FIRING)
    assert r.subject == "[FIRING] High Error Rate \N{EM DASH} My Application"
    assert r.text == ("High Error Rate is firing on application My Application.\n"
                      "error_rate (mean over 5m) = 0.08, threshold > 0.05\n"
                      "Started: 2026-12-01 21:40:00 UTC\n"
                      f"Link: {LINK}\n")
    assert r.html == (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
        '<body style="font-family:Helvetica,Arial,sans-serif;font-size:14px;color:#1f2328">'
        '<p style="margin:0 0 12px;font-size:16px;font-weight:bold;color:#cf222e">'
        'High Error Rate is firing on application My Application.</p>'
        '<p style="margin:0 0 6px">error_rate (mean over 5m) = 0.08, threshold &gt; 0.05</p>'
        '<p style="margin:0 0 6px">Started: 2026-12-01 21:40:00 UTC</p>'
        f'<p style="margin:12px 0 0">Link: <a href="{LINK}" style="color:#0969da">{LINK}</a></p></body></html>')
    # Slack mrkdwn reserves <, > and &: the operator arrives as &gt;.
    assert r.slack_text == (f"*[FIRING] High Error Rate* \N{EM DASH} <{LINK}|My Application>\n"
                            "error_rate (mean over 5m) = 0.08, threshold &gt; 0.05 \N{MIDDLE DOT} "
                            "Started: 2026-12-01 21:40:00 UTC")
    assert r.payload == {
        "version": 1, "id": "tr_3f2a", "kind": "firing", "rule": {"id": "alert_1", "name": "High Error Rate"},
        "subject": {"kind": "application", "id": "app_1", "name": "My Application"},
        "condition": {"metric": "error_rate", "aggregation": "mean", "operator": ">", "threshold": 0.05,
                      "window": "5m"},
        "value": 0.08000000001, "started_at": "2026-12-01T21:40:00Z", "at": "2026-12-01T21:40:00Z",
        "link": LINK, "severity": None, "details": None,
        "title": "[FIRING] High Error Rate \N{EM DASH} My Application"}


def test_resolved_says_how_long_it_fired():
    r = render(replace(FIRING, kind="resolved", value=0.031, at=T0 + 450_000))
    assert r.subject == "[RESOLVED] High Error Rate \N{EM DASH} My Application"
    assert r.text == ("High Error Rate resolved on application My Application.\n"
                      "error_rate (mean over 5m) = 0.031, threshold > 0.05\n"
                      "Started: 2026-12-01 21:40:00 UTC, fired for 7m 30s\n"
                      f"Link: {LINK}\n")
    assert r.slack_text == (f"*[RESOLVED] High Error Rate* \N{EM DASH} <{LINK}|My Application>\n"
                            "error_rate (mean over 5m) = 0.031, threshold &gt; 0.05 \N{MIDDLE DOT} "
                            "Started: 2026-12-01 21:40:00 UTC, fired for 7m 30s")
    assert (r.payload["kind"], r.payload["value"], r.payload["at"]) == ("resolved", 0.031, "2026-12-01T21:47:30Z")
    assert 'color:#1a7f37">High Error Rate resolved on application My Application.</p>' in r.html


def test_reminder_and_no_data():
    r = render(replace(FIRING, kind="reminder", value=0.12, at=T0 + 3_900_000))
    assert r.subject == "[REMINDER] High Error Rate \N{EM DASH} My Application"
    assert r.text == ("High Error Rate is still firing on application My Application.\n"
                      "error_rate (mean over 5m) = 0.12, threshold > 0.05\n"
                      "Started: 2026-12-01 21:40:00 UTC, firing for 1h 5m\n"
                      f"Link: {LINK}\n")
    r = render(replace(FIRING, kind="no_data", value=None, at=T0 + 900_000))
    assert r.subject == "[NO DATA] High Error Rate \N{EM DASH} My Application"
    assert r.text == ("High Error Rate is firing on application My Application and its data stopped.\n"
                      "error_rate (mean over 5m): no data, threshold > 0.05\n"
                      "Started: 2026-12-01 21:40:00 UTC, firing for 15m\n"
                      f"Link: {LINK}\n")
    assert r.slack_text == (f"*[NO DATA] High Error Rate* \N{EM DASH} <{LINK}|My Application>\n"
                            "error_rate (mean over 5m): no data, threshold &gt; 0.05 \N{MIDDLE DOT} "
                            "Started: 2026-12-01 21:40:00 UTC, firing for 15m")
    assert (r.payload["value"], r.payload["at"]) == (None, "2026-12-01T21:55:00Z")


def test_intervention_leads_with_the_ari_text():
    r = render(INTERVENTION)
    assert r.subject == "[ARI HIGH] Burnout risk detected \N{EM DASH} loop frequency spike \N{EM DASH} support-bot"
    assert r.text == ("ARI flagged agent support-bot: Burnout risk detected \N{EM DASH} loop frequency spike "
                      "(severity high).\n"
                      "Loop frequency 3.2x its 7-day baseline\n"
                      "Detected: 2026-12-01 21:40:00 UTC\n"
                      "Link: http://127.0.0.1:8000/api/agents/support-bot\n")
    assert r.slack_text == ("*[ARI HIGH] Burnout risk detected \N{EM DASH} loop frequency spike* \N{EM DASH} "
                            "<http://127.0.0.1:8000/api/agents/support-bot|support-bot>\n"
                            "Loop frequency 3.2x its 7-day baseline \N{MIDDLE DOT} Detected: 2026-12-01 21:40:00 UTC")
    assert r.payload == {
        "version": 1, "id": "tr_9c1d", "kind": "intervention", "rule": None,
        "subject": {"kind": "agent", "id": "support-bot", "name": "support-bot"}, "condition": None,
        "value": None, "started_at": "2026-12-01T21:40:00Z", "at": "2026-12-01T21:40:00Z",
        "link": "http://127.0.0.1:8000/api/agents/support-bot", "severity": "high",
        "details": "Loop frequency 3.2x its 7-day baseline",
        "title": "[ARI HIGH] Burnout risk detected \N{EM DASH} loop frequency spike \N{EM DASH} support-bot"}


def test_user_text_is_escaped_and_kept_on_one_line():
    r = render(replace(FIRING, rule_name="p95 <latency>\nspike", subject_name="R&D | <tools>", at=T0 + 1234))
    assert r.subject == "[FIRING] p95 <latency> spike \N{EM DASH} R&D | <tools>"
    assert r.text.splitlines()[0] == "p95 <latency> spike is firing on application R&D | <tools>."
    assert ">p95 &lt;latency&gt; spike is firing on application R&amp;D | &lt;tools&gt;.</p>" in r.html
    # A | would end Slack's link label early.
    assert r.slack_text.splitlines()[0] == (f"*[FIRING] p95 &lt;latency&gt; spike* \N{EM DASH} "
                                            f"<{LINK}|R&amp;D \N{DIVIDES} &lt;tools&gt;>")
    assert r.payload["at"] == "2026-12-01T21:40:01.234Z"


def test_numbers_and_durations_are_compact():
    assert [num(v) for v in (0.08000000001, 0.1 + 0.2, 250.0, -3, 1234.5678, 12345.6, 0.000012345)] == \
        ["0.08", "0.3", "250", "-3", "1235", "12346", "1.234e-05"]
    assert [duration(ms) for ms in (0, 999, 45_000, 450_000, 3_600_000, 3_601_000, 183_605_000)] == \
        ["0s", "0s", "45s", "7m 30s", "1h", "1h", "2d 3h"]
    with pytest.raises(ValueError, match="unknown notification kind 'paged'"):
        render(replace(FIRING, kind="paged"))


# --- email -----------------------------------------------------------------------------------

def email(url, recipients=("admin@company.com",), **kw):
    return asyncio.run(send_email(url, "Sophra <alerts@sophra.local>", list(recipients), render(FIRING),
                                  "dl_tr_3f2a_0", **kw))


def test_email_arrives_with_both_parts_and_its_delivery_id(smtp_server):
    assert email(smtp_server.url, ["admin@company.com", "oncall@company.com"]) is None
    [got] = smtp_server.messages
    r, m = render(FIRING), got.message
    assert (got.mail_from, got.rcpt_tos, got.tls, got.login) == \
        ("alerts@sophra.local", ["admin@company.com", "oncall@company.com"], False, None)
    assert (m["From"], m["To"], m["Subject"]) == \
        ("Sophra <alerts@sophra.local>", "admin@company.com, oncall@company.com", r.subject)
    assert (m["Message-ID"], m["X-Sophra-Delivery"]) == ("<dl_tr_3f2a_0@sophra>", "dl_tr_3f2a_0")
    assert abs(parsedate_to_datetime(m["Date"]).timestamp() - time.time()) < 30
    assert m.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in m.iter_parts()] == ["text/plain", "text/html"]
    assert m.get_body(("plain",)).get_content() == r.text
    assert m.get_body(("html",)).get_content() == r.html + "\n"  # set_content ends the part with a newline


def test_email_logs_in_with_url_decoded_credentials():
    with SmtpServer(user="alerts@sophra", password="p@ss:w/rd%") as server:
        assert server.url == f"smtp://alerts%40sophra:p%40ss%3Aw%2Frd%25@127.0.0.1:{server.port}"
        email(server.url)
        assert [(m.login, m.rcpt_tos) for m in server.messages] == [("alerts@sophra", ["admin@company.com"])]
        with pytest.raises(Permanent, match="^SMTP authentication failed: 535 "):
            email(f"smtp://alerts%40sophra:wrong@127.0.0.1:{server.port}")
        assert len(server.messages) == 1


def test_email_upgrades_with_starttls_when_offered(tls_certificate):
    with SmtpServer(user="alerts", password="secret", starttls=tls_certificate) as server:
        email(server.url, tls_context=tls_certificate.client_context())
        assert [(m.tls, m.login) for m in server.messages] == [(True, "alerts")]
        # The system's CAs do not know the test certificate: no retry can fix that.
        with pytest.raises(Permanent, match="^SMTP server's certificate did not verify: self.signed certificate$"):
            email(server.url)


def test_email_over_implicit_tls(tls_certificate):
    with SmtpServer(implicit_tls=tls_certificate) as server:
        assert server.url == f"smtps://127.0.0.1:{server.port}"
        email(server.url, tls_context=tls_certificate.client_context())
        assert [(m.tls, m.message["Subject"]) for m in server.messages] == [(True, render(FIRING).subject)]
        with pytest.raises(Permanent, match="^SMTP server's certificate did not verify: self.signed certificate$"):
            email(server.url)


def test_smtp_4xx_is_transient_and_5xx_permanent(smtp_server):
    smtp_server.fail_times = 1
    with pytest.raises(Transient, match="^SMTP server answered 451 4.3.0 Try again later$"):
        email(smtp_server.url)
    email(smtp_server.url)  # the retry goes through
    smtp_server.fail_times, smtp_server.fail_reply = 2, "554 5.7.1 Message rejected"
    with pytest.raises(Permanent, match="^SMTP server answered 554 5.7.1 Message rejected$"):
        email(smtp_server.url)
    assert len(smtp_server.messages) == 1


def test_unreachable_smtp_is_transient():
    with pytest.raises(Transient, match="^SMTP SMTPConnectError: "):
        email(f"smtp://127.0.0.1:{free_port()}")
    # Accepts the connection, never greets.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(Transient, match="^SMTP SMTP.*Timeout"):
            email(f"smtp://127.0.0.1:{silent.getsockname()[1]}", timeout=0.5)
    with pytest.raises(Permanent, match=r"^SOPHRA_SMTP_URL must be smtp://host\[:port\] or smtps://"):
        email("http://127.0.0.1:25")


def test_refused_recipients():
    refuse = {"gone@company.com": "550 5.1.1 No such user", "full@company.com": "452 4.2.2 Mailbox full"}
    with SmtpServer(refuse=refuse) as server:
        note = email(server.url, ["gone@company.com", "admin@company.com"])
        assert note == "refused: gone@company.com (550 5.1.1 No such user)"
        assert [m.rcpt_tos for m in server.messages] == [["admin@company.com"]]
        with pytest.raises(Permanent, match=r"^every recipient was refused: gone@company.com \(550 5.1.1 No such "
                                            r"user\)$"):
            email(server.url, ["gone@company.com"])
        with pytest.raises(Transient, match=r"^every recipient was refused: gone@company.com \(550 5.1.1 No such "
                                            r"user\); full@company.com \(452 4.2.2 Mailbox full\)$"):
            email(server.url, ["gone@company.com", "full@company.com"])
        assert len(server.messages) == 1


# --- Slack -----------------------------------------------------------------------------------

def through_outbound(send, *args, allow):
    """Run one send with an Outbound made (and closed) in that send's event loop."""
    async def go():
        outbound = Outbound(allow=allow)
        try:
            return await send(*args, outbound)
        finally:
            await outbound.close()
    return asyncio.run(go())


def slack(receiver, token="xoxb-test-token", webhook_url=None, allow=LOOPBACK):
    return through_outbound(send_slack, receiver.url, token, webhook_url, "#alerts", render(FIRING), "dl_tr_3f2a_1",
                            allow=allow)


def test_slack_chat_post_message(http_receiver):
    assert slack(http_receiver) is None
    [req] = http_receiver.requests
    assert (req.method, req.path) == ("POST", "/chat.postMessage")
    assert (req.headers["Authorization"], req.headers["Content-Type"]) == \
        ("Bearer xoxb-test-token", "application/json; charset=utf-8")
    assert req.json == {"channel": "#alerts", "text": render(FIRING).slack_text, "unfurl_links": False,
                        "metadata": {"event_type": "sophra_alert",
                                     "event_payload": {"delivery_id": "dl_tr_3f2a_1"}}}


@pytest.mark.parametrize("reply, outcome, message, after", [
    (Reply(json={"ok": False, "error": "channel_not_found"}), Permanent, "Slack API error: channel_not_found", None),
    (Reply(json={"ok": False, "error": "token_revoked"}), Permanent, "Slack API error: token_revoked", None),
    (Reply(json={"ok": False, "error": "internal_error"}), Transient, "Slack API error: internal_error", None),
    (Reply(json={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "12"}), Transient,
     "Slack API error: ratelimited", 12.0),
    (Reply(429, json={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "30"}), Transient,
     'Slack API answered 429: {"ok": false, "error": "ratelimited"}', 30.0),
    (Reply(503, text="upstream down"), Transient, "Slack API answered 503: upstream down", None),
    (Reply(404, text="not found"), Permanent, "Slack API answered 404: not found", None),
    (Reply(200, text="<html>portal</html>"), Transient, "Slack API answered 200 without a Slack answer: "
                                                        "<html>portal</html>", None),
])
def test_slack_api_failures_are_classified(http_receiver, reply, outcome, message, after):
    http_receiver.script("/chat.postMessage", reply)
    with pytest.raises(outcome) as failed:
        slack(http_receiver)
    assert str(failed.value) == message
    assert getattr(failed.value, "retry_after", None) == after


def test_slack_without_a_usable_token(http_receiver):
    with pytest.raises(Permanent, match="^Slack API error: invalid_auth$"):
        slack(http_receiver, token="xoxb-revoked")
    with pytest.raises(Permanent) as failed:
        slack(http_receiver, token=None)
    assert str(failed.value) == "no Slack bot token is set for this account and the action has no incoming-webhook URL"
    assert len(http_receiver.requests) == 1  # the second never left


def test_slack_incoming_webhook(http_receiver):
    slack(http_receiver, token=None, webhook_url=http_receiver.slack_webhook_url)
    [req] = http_receiver.requests
    assert (req.method, req.path, req.json) == \
        ("POST", "/services/T0000/B0000/XXXXXXXX", {"text": render(FIRING).slack_text})
    assert "Authorization" not in req.headers
    http_receiver.script("/services/T0000/B0000/XXXXXXXX", Reply(404, text="no_service"), Reply(500, text="oops"))
    with pytest.raises(Permanent, match="^Slack incoming webhook answered 404: no_service$"):
        slack(http_receiver, webhook_url=http_receiver.slack_webhook_url)
    with pytest.raises(Transient, match="^Slack incoming webhook answered 500: oops$"):
        slack(http_receiver, webhook_url=http_receiver.slack_webhook_url)


def test_slack_incoming_webhook_to_loopback_is_refused_by_default(http_receiver):
    with pytest.raises(Permanent, match="^the URL was refused by the outbound guard: "):
        slack(http_receiver, webhook_url=http_receiver.slack_webhook_url, allow=[])
    assert http_receiver.requests == []


# --- webhooks --------------------------------------------------------------------------------

def webhook(url, allow=LOOPBACK):
    return through_outbound(send_webhook, url, SECRET, render(FIRING), "dl_tr_3f2a_2", allow=allow)


def test_webhook_is_signed_json(http_receiver):
    before = int(time.time())
    assert webhook(http_receiver.hook_url) is None
    [req] = http_receiver.requests
    ts, sig = req.headers["X-Sophra-Timestamp"], req.headers["X-Sophra-Signature"]
    assert (req.method, req.path, req.json) == ("POST", "/hook", render(FIRING).payload)
    assert req.body == json.dumps(render(FIRING).payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert (req.headers["Content-Type"], req.headers["User-Agent"], req.headers["X-Sophra-Delivery"]) == \
        ("application/json", "Sophra-Webhook/1", "dl_tr_3f2a_2")
    assert before <= int(ts) <= time.time()
    # The documented scheme, computed independently of the sender's code.
    assert sig == "sha256=" + hmac.new(SECRET.encode(), f"{ts}.".encode() + req.body, hashlib.sha256).hexdigest()
    assert verify_signature(SECRET, ts, req.body, sig)
    assert not verify_signature("whsec_wrong", ts, req.body, sig)
    assert not verify_signature(SECRET, ts, req.body.replace(b"0.05", b"0.5"), sig)
    assert not verify_signature(SECRET, str(int(ts) + 1), req.body, sig)
    assert not verify_signature(SECRET, ts, req.body, None)
    # Replay window: a stale timestamp fails unless the receiver opts out.
    assert not verify_signature(SECRET, ts, req.body, sig, now=int(ts) + 301)
    assert verify_signature(SECRET, ts, req.body, sig, now=int(ts) + 301, max_age=None)


@pytest.mark.parametrize("reply, outcome, message, after", [
    (Reply(500, text="boom"), Transient, "webhook answered 500: boom", None),
    (Reply(503, headers={"Retry-After": "7"}), Transient, "webhook answered 503", 7.0),
    (Reply(429, headers={"Retry-After": "7"}), Transient, "webhook answered 429", 7.0),
    (Reply(408), Transient, "webhook answered 408", None),
    (Reply(404, text="no such hook"), Permanent, "webhook answered 404: no such hook", None),
    (Reply(410), Permanent, "webhook answered 410", None),
    (Reply(301, headers={"Location": "http://127.0.0.1:1/elsewhere"}), Permanent,
     "webhook answered 301 (redirects are not followed)", None),
])
def test_webhook_failures_are_classified(http_receiver, reply, outcome, message, after):
    http_receiver.script("/hook", reply)
    with pytest.raises(outcome) as failed:
        webhook(http_receiver.hook_url)
    assert (str(failed.value), getattr(failed.value, "retry_after", None)) == (message, after)
    assert [r.path for r in http_receiver.requests] == ["/hook"]  # one attempt, no redirect followed


def test_webhook_429_with_an_http_date(http_receiver):
    at = datetime.fromtimestamp(int(time.time()) + 120, timezone.utc)
    http_receiver.script("/hook", Reply(429, headers={"Retry-After": format_datetime(at, usegmt=True)}))
    with pytest.raises(Transient) as failed:
        webhook(http_receiver.hook_url)
    assert 115 <= failed.value.retry_after <= 120


def test_retry_after_parsing():
    now = datetime(2026, 12, 1, 21, 40, tzinfo=timezone.utc).timestamp()
    assert [retry_after(v, now=now) for v in ("120", "1.5", "-5", "Tue, 01 Dec 2026 21:41:30 GMT",
                                              "Tue, 01 Dec 2026 21:39:00 GMT", "soon", "", None, "nan")] == \
        [120.0, 1.5, 0.0, 90.0, 0.0, None, None, None, None]


def test_unreachable_webhook_is_transient():
    with pytest.raises(Transient, match="^the request did not complete: "):
        webhook(f"http://127.0.0.1:{free_port()}/hook")


def test_webhook_to_loopback_is_refused_by_default(http_receiver):
    with pytest.raises(Permanent, match="^the URL was refused by the outbound guard: "):
        webhook(http_receiver.hook_url, allow=[])
    assert http_receiver.requests == []
