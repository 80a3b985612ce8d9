"""The notifier: alert transitions and ARI interventions in, emails, Slack messages and
webhooks out (docs/alerts.md, docs/notifications.md).

    read app.alerts + agent.interventions ──> deliveries (one per notification and action)
        ──> `pending` in the outbox (notify.state) ──> commit the source offsets
    per delivery, on its own task: attempt ──> record the attempt (app.alert_deliveries,
        landed in ClickHouse) and the new state (pending with the next time, or done)

Guarantees: a delivery recorded as done is never sent again (restarts, re-read source
records and replays all map to the same delivery id); a notifier killed during an
attempt repeats that one attempt, so a receiver sees at most one duplicate, carrying the
same idempotency id (X-Sophra-Delivery, the email's Message-ID). Each delivery runs on
its own task under a per-channel concurrency cap, so a slow or failing channel never
delays the others. Transient failures are retried with exponential backoff and jitter
(honouring Retry-After) for 24 h; permanent ones stop at once.
"""
import asyncio
import hashlib
import json
import logging
import random
import time

from confluent_kafka import Consumer, TopicPartition

from schemas import codec
from sophra.settings import Settings

from ..applications import ConfigRegistry
from ..outbound import Outbound
from ..producer import RecordProducer
from ..topics import (ALERT_RULES, APP_ALERT_DELIVERIES, APP_ALERTS, APPLICATIONS, ARI_INTERVENTIONS, INTEGRATIONS,
                      NOTIFICATION_POLICIES, NOTIFY_STATE)
from . import channels
from .messages import Notification, iso, render
from .state import DeliveryBook, state_record

log = logging.getLogger("sophra.notifier")

GIVE_UP_MS = 24 * 3_600_000
MAX_DELAY_MS = 30 * 60_000
STALE_MS = 24 * 3_600_000     # a notification first read this late is recorded, not sent
CONCURRENCY = {"email": 8, "slack": 8, "webhook": 16}
SEVERITY = {"low": 0, "medium": 1, "high": 2}
NO_SMTP = ("SOPHRA_SMTP_URL is not set: email is not delivered. Set it to smtp://user:pass@host:587 "
           "and restart the notifier")


def _now() -> int:
    return time.time_ns() // 1_000_000


def delivery_id(notification_id: str, index: int, action: dict) -> str:
    text = f"{notification_id}/{index}/{json.dumps(action, sort_keys=True)}"
    return "dl_" + hashlib.sha256(text.encode()).hexdigest()[:20]


def backoff_ms(attempt: int, base_ms: int, retry_after_s: float | None, rng=random) -> int:
    """Delay before attempt `attempt + 1`: base·2^(attempt-1) up to 30 min, times a jitter
    of 0.5–1.5, and never sooner than the server's Retry-After."""
    delay = min(base_ms * 2 ** (attempt - 1), MAX_DELAY_MS) * rng.uniform(0.5, 1.5)
    return int(max(delay, (retry_after_s or 0) * 1000))


def target_of(action: dict) -> str:
    return {"email": lambda a: ", ".join(a["recipients"]), "slack": lambda a: a["channel"],
            "webhook": lambda a: a["url"]}[action["type"]](action)


class Notifier:
    def __init__(self, settings: Settings, bootstrap: str):
        self.settings, self.bootstrap = settings, bootstrap
        self.alerts_topic = settings.topic(APP_ALERTS.name)
        self.interventions_topic = settings.topic(ARI_INTERVENTIONS.name)
        self.owned: set[str] = set()            # "<topic>/<partition>" this notifier is assigned
        self.tasks: dict[str, asyncio.Task] = {}
        self.sent = 0
        self._limits = {kind: asyncio.Semaphore(n) for kind, n in CONCURRENCY.items()}

    # -- lifecycle -------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        s, b = self.settings, self.bootstrap
        self.loop = asyncio.get_running_loop()
        tables = await asyncio.gather(*(asyncio.to_thread(lambda t=t: ConfigRegistry(b, s.topic(t.name)).start())
                                        for t in (APPLICATIONS, ALERT_RULES, NOTIFICATION_POLICIES, INTEGRATIONS)))
        self.apps, self.rules, self.policies, self.integrations = tables
        self.book = await asyncio.to_thread(lambda: DeliveryBook(b, s.topic(NOTIFY_STATE.name)).start())
        self.producer = RecordProducer(b)
        self.outbound = Outbound.from_settings(s)
        consumer = Consumer({"bootstrap.servers": b, "group.id": s.notifier_group, "enable.auto.commit": False,
                             "auto.offset.reset": "earliest", "enable.partition.eof": False})
        consumer.subscribe([self.alerts_topic, self.interventions_topic],
                           on_assign=lambda c, parts: self._handoff(self._assigned, parts),
                           on_revoke=lambda c, parts: self._handoff(self._revoked, parts))
        if not s.smtp_url:
            log.warning(NO_SMTP)
        try:
            while not stop.is_set():
                msgs = await asyncio.to_thread(consumer.consume, 500, 0.2)
                good = [m for m in msgs if not m.error()]
                if not good:
                    continue
                fresh: dict[str, dict] = {}
                for m in good:  # one outbox entry per delivery id, however often a batch repeats it
                    for state in self._deliveries(m):
                        fresh.setdefault(state["delivery_id"], state)
                await asyncio.gather(*(self._save(st) for st in fresh.values()))
                for st in fresh.values():
                    if st["source"] in self.owned:
                        self._schedule(st)
                offsets = {}
                for m in good:
                    offsets[(m.topic(), m.partition())] = m.offset() + 1
                # Only now: every delivery those records asked for is in the outbox.
                await asyncio.to_thread(consumer.commit, offsets=[TopicPartition(t, p, o) for (t, p), o in
                                                                  offsets.items()], asynchronous=False)
        finally:
            for task in self.tasks.values():
                task.cancel()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            await asyncio.to_thread(consumer.close)
            await self.outbound.close()
            await asyncio.to_thread(self.producer.close)
            for table in (*tables, self.book):
                table.stop()

    def _handoff(self, fn, parts) -> None:
        # Rebalance callbacks run on the consumer's thread, inside consume().
        sources = {f"{tp.topic}/{tp.partition}" for tp in parts}
        self.loop.call_soon_threadsafe(fn, sources)

    def _assigned(self, sources: set[str]) -> None:
        self.owned |= sources
        for state in self.book.pending(sources):  # resume what a previous owner left pending
            self._schedule(state)

    def _revoked(self, sources: set[str]) -> None:
        self.owned -= sources
        for state in [st for st in self.book.by_id.values() if st["source"] in sources]:
            task = self.tasks.pop(state["delivery_id"], None)
            if task:
                task.cancel()

    # -- reading notifications -------------------------------------------------------
    def _deliveries(self, msg) -> list[dict]:
        """The new deliveries (outbox states) a source record asks for."""
        try:
            kind, record = codec.decode(msg.value())
        except codec.DecodeError as exc:
            log.warning("skipping undecodable record: %s", exc)
            return []
        if kind == "alert_transition":
            wanted = self._from_transition(record)
        elif kind == "ari_intervention":
            wanted = self._from_intervention(record)
        else:
            return []
        source = f"{msg.topic()}/{msg.partition()}"
        now = _now()
        fresh = []
        for tenant, n, index, action, born in wanted:
            did = delivery_id(n["id"], index, action)
            if did in self.book.by_id:
                continue  # queued or done before: a re-read, a replay, or a restart
            stale = now - born > STALE_MS
            fresh.append(state_record(tenant, did, source, n, action, status="pending", attempts=0,
                                      next_at=now, first_at=now, outcome="stale" if stale else None))
        return fresh

    def _from_transition(self, r: dict) -> list:
        if r["notify"] is None:
            return []
        tenant = r["tenant"]
        rule = self.rules.get(tenant, r["rule_id"])
        # The rule's own actions (they hold webhook secrets, which transitions do not carry);
        # the transition's copy when the rule was deleted meanwhile.
        actions = json.loads(rule["actions"] if rule else r["actions"])
        if r["scope"] == "application":
            app = self.apps.get(tenant, r["subject_id"])
            name, link = (app["name"] if app else r["subject_id"]), f"/v1/applications/{r['subject_id']}"
        else:  # an agent or a budget: the name the worker knew it by
            route = "budgets" if r["scope"] == "budget" else "agents"
            name, link = r["subject_name"] or r["subject_id"], f"/api/{route}/{r['subject_id']}"
        n = {"id": r["id"], "kind": r["notify"], "rule_id": r["rule_id"], "rule_name": r["rule_name"],
             "subject_kind": r["scope"], "subject_id": r["subject_id"], "subject_name": name, "metric": r["metric"],
             "aggregation": r["aggregation"], "operator": r["operator"], "threshold": r["threshold"],
             "window": r["eval_window"], "value": r["value"], "started_at": r["started_at"], "at": r["at"],
             "link": self.settings.base_url + link}
        return [(tenant, n, i, a, r["wall_at"]) for i, a in enumerate(actions)]

    def _from_intervention(self, r: dict) -> list:
        """One notification per intervention, from the first version at or above a policy's
        minimum severity (later versions map to the same delivery ids)."""
        out = []
        for policy in self.policies.of(r["tenant"]):
            if not policy["enabled"] or SEVERITY.get(r["severity"], 0) < SEVERITY[policy["min_severity"]]:
                continue
            if policy["agent_id"] not in (None, r["agent_id"]):
                continue
            n = {"id": f"ari_{r['intervention_id']}_{policy['id']}", "kind": "intervention", "rule_id": None,
                 "rule_name": r["description"], "subject_kind": "agent", "subject_id": r["agent_id"],
                 "subject_name": r["agent_id"], "metric": None, "aggregation": None, "operator": None,
                 "threshold": None, "window": None, "value": None, "started_at": r["opened_at"], "at": r["opened_at"],
                 "link": f"{self.settings.base_url}/api/agents/{r['agent_id']}/ari", "severity": r["severity"],
                 "details": None}
            out += [(r["tenant"], n, i, a, r["opened_at"]) for i, a in enumerate(json.loads(policy["actions"]))]
        return out

    async def _save(self, state: dict) -> None:
        await self.producer.send(self.settings.topic(NOTIFY_STATE.name), state["delivery_id"].encode(),
                                 codec.encode("delivery_state", state))
        self.book.remember(state)

    # -- delivering ------------------------------------------------------------------
    def _schedule(self, state: dict) -> None:
        did = state["delivery_id"]
        if did not in self.tasks or self.tasks[did].done():
            self.tasks[did] = asyncio.create_task(self._deliver(state), name=did)

    async def _deliver(self, state: dict) -> None:
        try:
            while state["status"] == "pending":
                wait = state["next_at"] - _now()
                if wait > 0:
                    await asyncio.sleep(wait / 1000)
                state = await self._attempt(state)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not end the notifier; the delivery resumes on restart
            log.exception("delivery %s failed unexpectedly", state["delivery_id"])
        finally:
            self.tasks.pop(state["delivery_id"], None)

    async def _attempt(self, state: dict) -> dict:
        n = json.loads(state["notification"])
        action = json.loads(state["action"])
        attempt = state["attempts"] + 1
        started = time.monotonic()
        outcome, error, retry_after = await self._send(state, Notification(**n), action)
        latency = int((time.monotonic() - started) * 1000)
        now = _now()
        next_at = None
        if outcome == "retrying":
            next_at = now + backoff_ms(attempt, self.settings.notify_retry_base_ms, retry_after)
            if next_at > state["first_at"] + GIVE_UP_MS:
                outcome, next_at, error = "failed", None, f"{error}; gave up after 24 h of retries"
        record = {"tenant": state["tenant"], "id": f"{state['delivery_id']}#{attempt}",
                  "delivery_id": state["delivery_id"], "transition_id": n["id"], "rule_id": n["rule_id"],
                  "scope": n["subject_kind"], "subject_id": n["subject_id"], "action_type": action["type"],
                  "target": target_of(action), "attempt": attempt, "outcome": outcome, "error": error,
                  "latency_ms": latency, "at": now, "next_attempt_at": next_at}
        new = {**state, "attempts": attempt, "status": "pending" if next_at else "done",
               "next_at": next_at or now, "outcome": None if next_at else outcome}
        await asyncio.gather(
            self.producer.send(self.settings.topic(APP_ALERT_DELIVERIES.name), state["delivery_id"].encode(),
                               codec.encode("alert_delivery", record)),
            self._save(new))
        if outcome == "delivered":
            self.sent += 1
        log.info("%s %s to %s: %s%s", state["delivery_id"], action["type"], record["target"], outcome,
                 f" ({error})" if error else "")
        return new

    def _muted(self, tenant: str, n: Notification) -> str | None:
        """Why this notification is not to be sent now, if it is not."""
        if n.rule_id:
            rule = self.rules.get(tenant, n.rule_id)
            if rule and rule["silenced_until"] and rule["silenced_until"] > _now():
                return f"silenced until {iso(rule['silenced_until'] // 1000 * 1000)}"  # as the api shows it
        if n.subject_kind == "application":
            app = self.apps.get(tenant, n.subject_id)
            if app and json.loads(app["config"]).get("alerts") is False:
                return "alerts are off for this application (config.alerts is false)"
        return None

    async def _send(self, state: dict, n: Notification, action: dict) -> tuple[str, str | None, float | None]:
        """(outcome, error, retry_after) of one attempt."""
        if state["outcome"] == "stale":
            return "suppressed", "first read more than 24 h after it happened", None
        if why := self._muted(state["tenant"], n):
            return "suppressed", why, None
        kind, did, s = action["type"], state["delivery_id"], self.settings
        if kind == "email" and not s.smtp_url:
            return "not_delivered", NO_SMTP, None
        r = render(n)
        try:
            async with self._limits[kind]:
                if kind == "email":
                    await channels.send_email(s.smtp_url, s.smtp_from, action["recipients"], r, did)
                elif kind == "slack":
                    token = self.integrations.get(state["tenant"], f"{state['tenant']}/slack")
                    await channels.send_slack(s.slack_api_url, token["secret"] if token else None,
                                              action.get("webhook_url"), action["channel"], r, did, self.outbound)
                else:
                    await channels.send_webhook(action["url"], action.get("secret") or "", r, did, self.outbound)
        except channels.Transient as exc:
            return "retrying", str(exc), exc.retry_after
        except channels.Permanent as exc:
            return "failed", str(exc), None
        except Exception as exc:  # unforeseen: treat as transient, the 24 h bound still holds
            log.exception("delivery %s raised", did)
            return "retrying", f"{type(exc).__name__}: {exc}", None
        return "delivered", None, None


def run(settings: Settings, bootstrap: str) -> None:
    """Run the notifier in the foreground until SIGINT/SIGTERM."""
    import signal

    from ..topics import ensure_topics

    ensure_topics(bootstrap, settings.topic_prefix)

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Notifier(settings, bootstrap).run(stop)

    asyncio.run(main())
