"""The /v1 hourly quota per account: the rules in one place, and the replicated state
behind them (docs/quota.md).

- Each account (tenant) may make PLAN_LIMITS[plan] requests per fixed UTC hour, whichever
  of its keys makes them: one count for all its keys, so more keys, or revoking one and
  creating another, never add to it. The plan is set by `sophra plan` on the compacted
  `accounts.plans` topic; without a record an account is on DEFAULT_PLAN.
- Below, "key" is what is counted, the `key_id` of the usage records: the api counts by
  the account's tenant (api/quota.py), so that field holds the tenant.
- The count is shared by every api process. Each process counts the requests it grants
  per key and hour (`UsageCounter`) and, every REPORT_INTERVAL_S, reports its running
  count of each key it touched to `api.usage`. The worker keeps, per key and hour, each
  process's latest count in a tumbling-window table and publishes them with their sum
  on the compacted `quota.usage`, which every api process tails (`UsageTail`).
- A process decides on `the other processes' counts as the worker last published them
  + its own count` (its own count is exact locally), and grants while that is below the
  limit. So that no two processes can each grant the whole quota meanwhile, it also
  keeps its *unconfirmed* grants of a key (not yet in the worker's sum) under a budget:
  max(1, (limit - confirmed total) // (BUDGET_SHARE * api processes the worker counted
  this hour or the last)), and 1 while the worker has never counted this process.
  Over budget, a request waits until the worker confirms. With N processes the total
  granted stays within [limit, limit + N - 1] (docs/quota.md: why, and the lag).
- If the worker confirms nothing of this process for CONFIRM_WAIT_S, the budget is
  lifted until it does: each process then decides on what it knows, rather than the
  quota taking /v1 down with the worker.

Reports carry running counts, not deltas: the worker keeps the largest count per
process, so a redelivered, repeated or lost-then-resent report never counts twice or
goes missing. A process restarting is a new reporter (`api_node` has a random part), so
its former count stays in the sum.
"""
import logging
import math
import threading
import time
from dataclasses import dataclass

from confluent_kafka import KafkaException, Producer, TopicPartition

from schemas import codec

from .accounts import EMAIL, normalize_email, tenant_for
from .applications import ConfigRegistry
from .producer import producer_config
from .topic_table import PromptTopicTable

log = logging.getLogger("sophra.quota")

# Requests per account per hour; None = unlimited. Tests add a small hidden plan here.
PLAN_LIMITS: dict[str, int | None] = {"standard": 1_000, "pro": 10_000, "enterprise": None}
PLANS = ("standard", "pro", "enterprise")  # what `sophra plan` offers
DEFAULT_PLAN = "standard"

WINDOW_MS = 3_600_000       # fixed UTC hours: [hh:00:00, hh+1:00:00)
REPORT_INTERVAL_S = 0.25    # how often an api process reports its counts (sooner when a budget runs out)
BUDGET_SHARE = 4            # unconfirmed grants per process: at most 1/(4 N) of what remains
CONFIRM_WAIT_S = 2.0        # after this long without the worker's confirmation, decide without it
WAIT_POLL_S = 0.01          # how often a waiting request looks again


def window_of(now_ms: int) -> int:
    """Start (epoch ms) of the UTC hour holding `now_ms`."""
    return now_ms - now_ms % WINDOW_MS


def limit_of(plan: str) -> int | None:
    if plan not in PLAN_LIMITS:
        log.warning("unknown plan %r: applying %s", plan, DEFAULT_PLAN)
        plan = DEFAULT_PLAN
    return PLAN_LIMITS[plan]


@dataclass(frozen=True)
class Decision:
    granted: bool
    limit: int | None       # None: unlimited
    remaining: int | None   # after this request; None when unlimited
    reset: int              # epoch seconds when the hour ends
    retry_after: int | None = None  # seconds, when refused
    wait: bool = False      # refused only for now: this process's budget of unconfirmed grants is used up


class UsageCounter:
    """One api process's counts and its view of the worker's sums. Pure bookkeeping,
    clock passed in. `decide`, `take_reports` and `report_failed` run on the event loop
    (`decide` checks and counts in one synchronous step, so two concurrent requests can't
    both take the last unit); `apply_total` runs on the tail thread and only swaps in
    whole new objects, which the event loop reads."""

    def __init__(self, node: str):
        self.node = node
        self._local: dict[tuple[str, int], list] = {}  # (key_id, window) -> [count, tenant]
        self._dirty: set[tuple[str, int]] = set()
        self._shared: dict[str, tuple[int, dict[str, int]]] = {}  # key_id -> (window, count per node)
        self._recent: dict[str, int] = {}  # api process -> latest window the worker counted it in
        self._awaiting: dict[tuple[str, int], list] = {}  # reported, not yet confirmed -> [(count, sent at)]
        self._processes = (None, None, 1, False)  # cache: (recent, window, how many, this one known)
        self.worker_late = False  # see check_worker

    def decide(self, key_id: str, tenant: str, limit: int | None, now_ms: int) -> Decision:
        window = window_of(now_ms)
        reset = (window + WINDOW_MS) // 1000
        slot = (key_id, window)
        entry = self._local.get(slot)
        local = entry[0] if entry else 0
        if limit is not None:
            nodes = self.confirmed(key_id, window)
            mine = nodes.get(self.node, 0)
            others = sum(nodes.values()) - mine
            used = others + local
            if used >= limit:
                return Decision(False, limit, 0, reset, retry_after=max(1, math.ceil((reset * 1000 - now_ms) / 1000)))
            if local - mine >= self.budget(limit - others - mine, window):
                return Decision(False, limit, limit - used, reset, retry_after=1, wait=True)
        if entry is None:
            entry = self._local[slot] = [0, tenant]
        entry[0] += 1
        self._dirty.add(slot)
        return Decision(True, limit, None if limit is None else limit - used - 1, reset)

    def budget(self, remaining: int, window: int) -> float:
        """How many grants of one key this process may have that the worker has not
        confirmed yet, when `remaining` is what the worker's sums leave of the limit."""
        if self.worker_late:
            return math.inf  # the worker is not confirming: decide on what is known (docs/quota.md)
        processes, known = self.processes(window)
        if not known:  # the others don't count this process yet: one grant, then wait until they do
            return 1
        return max(1, remaining // (BUDGET_SHARE * processes))

    def processes(self, window: int) -> tuple[int, bool]:
        """(api processes counted by the worker this hour or the last, this one included;
        whether this one is among them)."""
        recent, cached_window, n, known = self._processes
        if recent is not self._recent or cached_window != window:
            recent = self._recent
            live = {node for node, seen in recent.items() if seen >= window - WINDOW_MS}
            n, known = len(live | {self.node}), self.node in live
            self._processes = (recent, window, n, known)
        return n, known

    def check_worker(self, now_ms: int) -> bool:
        """Set and return `worker_late`: whether a count this process reported has waited
        CONFIRM_WAIT_S or more for the worker's sum. Runs after each report."""
        late = False
        for slot in list(self._awaiting):
            seen, nodes = self._shared.get(slot[0], (None, {}))
            confirmed = nodes.get(self.node, 0) if seen == slot[1] else 0
            pending = [(count, sent) for count, sent in self._awaiting[slot] if count > confirmed]
            if not pending or slot[1] + WINDOW_MS <= now_ms:  # (an hour that is over is no longer published)
                del self._awaiting[slot]
            else:
                self._awaiting[slot] = pending
                late = late or now_ms - pending[0][1] >= CONFIRM_WAIT_S * 1000
        self.worker_late = late
        return late

    def confirmed(self, key_id: str, window: int) -> dict[str, int]:
        """Count per api process of `key_id` in `window`, as the worker last published it."""
        seen, nodes = self._shared.get(key_id, (None, {}))
        return nodes if seen == window else {}

    def apply_total(self, record: dict) -> None:
        key_id, window, nodes = record["key_id"], record["window_start"], record["nodes"]
        seen = self._shared.get(key_id)
        if seen is None or window >= seen[0]:
            self._shared[key_id] = (window, dict(nodes))
        if any(self._recent.get(node, -1) < window for node in nodes):
            self._recent = {**self._recent, **{node: window for node in nodes if self._recent.get(node, -1) < window}}

    def take_reports(self, now_ms: int) -> list[dict]:
        """The running count of every (key, hour) counted since the last call; forgets
        the hours that are over once reported."""
        reports = []
        for slot in self._dirty:
            count, tenant = self._local[slot]
            reports.append({"tenant": tenant, "key_id": slot[0], "window_start": slot[1], "count": count,
                            "api_node": self.node})
            pending = self._awaiting.setdefault(slot, [])
            # the oldest unconfirmed count (how late the worker is) and the newest (what confirms all)
            pending[1:] = [(count, now_ms)]
        self._dirty.clear()
        current = window_of(now_ms)
        for slot in [s for s in self._local if s[1] < current]:
            del self._local[slot]
        return reports

    def report_failed(self, reports: list[dict]) -> None:
        """Those reports did not reach Kafka: send the (then current) counts again next time."""
        for r in reports:
            slot = (r["key_id"], r["window_start"])
            if slot not in self._local:
                self._local[slot] = [r["count"], r["tenant"]]
            self._dirty.add(slot)


# --- the worker's side: pure -----------------------------------------------------------

def merge_report(nodes: dict[str, int], report: dict) -> dict[str, int]:
    """A process's running count replaces its previous one if larger (so a redelivered or
    reordered report changes nothing)."""
    node, count = report["api_node"], report["count"]
    if count <= nodes.get(node, 0):
        return nodes
    return {**nodes, node: count}


def total_record(report: dict, nodes: dict[str, int]) -> dict:
    return {"tenant": report["tenant"], "key_id": report["key_id"], "window_start": report["window_start"],
            "count": sum(nodes.values()), "api_node": "", "nodes": nodes}


# --- replicated state in every api process -----------------------------------------------

class PlanBook(ConfigRegistry):
    """Each account's plan, from the compacted `accounts.plans` topic (key = tenant)."""

    def plan_of(self, tenant: str) -> str:
        record = self.get(tenant, tenant)
        return record["plan"] if record else DEFAULT_PLAN


class UsageTail(PromptTopicTable):
    """The worker's sums from the compacted `quota.usage` topic, into a UsageCounter.

    Only the current and the previous hour matter, so at start it seeks to the first
    record written since the previous hour began instead of replaying the topic."""

    def __init__(self, bootstrap: str, topic: str, counter: UsageCounter):
        super().__init__(bootstrap, topic, lambda _, value: value is not None and counter.apply_total(
            codec.decode(value)[1]))

    def start(self, timeout: float = 30) -> "UsageTail":
        since = window_of(time.time_ns() // 1_000_000) - WINDOW_MS
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = self._consumer.offsets_for_times([TopicPartition(self.topic, 0, since)], timeout=5)[0]
                break
            except KafkaException:  # a topic created a moment ago may not have a leader yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        if found.offset >= 0:
            self._position = found.offset
            self._consumer.assign([TopicPartition(self.topic, 0, found.offset)])
        else:  # nothing written since: start at the end
            self._position = self._end_offset(timeout)
            self._consumer.assign([TopicPartition(self.topic, 0, self._position)])
        return super().start(timeout)


# --- the operator command ---------------------------------------------------------------------

def set_plan(bootstrap: str, topic: str, email: str, plan: str, timeout: float = 30) -> tuple[str, int]:
    """Put `email`'s account on `plan`; returns (tenant, offset of the record) once Kafka has it."""
    email = normalize_email(email)
    if not EMAIL.match(email):
        raise ValueError(f"not an email address: {email!r}")
    if plan not in PLAN_LIMITS:
        raise ValueError(f"unknown plan {plan!r}; plans: {', '.join(PLANS)}")
    tenant = tenant_for(email)
    record = {"tenant": tenant, "email": email, "plan": plan, "updated_at": time.time_ns() // 1_000_000}
    done, result = threading.Event(), {}

    def delivered(err, msg):
        result.update(err=err, offset=None if err else msg.offset())
        done.set()

    producer = Producer(producer_config(bootstrap))
    producer.produce(topic, key=tenant.encode(), value=codec.encode("quota_plan", record), on_delivery=delivered)
    producer.flush(timeout)
    if not done.is_set() or result["err"] is not None:
        raise RuntimeError(f"the plan was not stored: {result.get('err') or 'timed out'}")
    return tenant, result["offset"]


def describe_limit(limit: int | None) -> str:
    return "unlimited requests" if limit is None else f"{limit:,} requests per hour per account"
