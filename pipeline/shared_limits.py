"""The vitals rate limit, shared by every api replica through the reports themselves.

Every replica tails `agent.vitals` (all partitions, from VITALS_INTERVAL_S before it
started, so a restart forgets no open window) and marks each stored report's agent in
its IntervalLimiter until that report's window ends. No extra topic and no extra write
per request: a report that was acknowledged is in the topic, and only those count, so a
report whose write failed gives its window back on every replica at once.

The sharing lag is the time from one replica's acknowledgement to another's mark (the
producer's linger, the broker, this consumer's fetch wait): two reports for one agent
sent to two replicas within it can both be granted. bench/vitals_limit_lag.py measures
it; README, "Measured".
"""
import logging
import threading
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from schemas import codec

from .limits import IntervalLimiter

log = logging.getLogger("sophra.shared_limits")


class VitalsTail:
    def __init__(self, bootstrap: str, topic: str, limiter: IntervalLimiter):
        self.topic, self.limiter = topic, limiter
        # fetch.wait.max.ms bounds the lag when reports are rare; a fetch returns as soon as one arrives
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "sophra-vitals-limit",
                                   "enable.auto.commit": False, "enable.partition.eof": False,
                                   "fetch.wait.max.ms": 50})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"limit-{topic}", daemon=True)

    def start(self, timeout: float = 30) -> "VitalsTail":
        since = time.time_ns() // 1_000_000 - int(self.limiter.interval * 1000)
        deadline = time.monotonic() + timeout
        while True:
            try:
                parts = self._consumer.list_topics(self.topic, timeout=5).topics[self.topic].partitions
                if not parts:
                    raise KafkaException(f"{self.topic} has no partitions yet")
                found = self._consumer.offsets_for_times([TopicPartition(self.topic, p, since) for p in parts],
                                                         timeout=5)
                break
            except KafkaException:  # a topic created a moment ago may not have a leader yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        # offset -1: nothing written since `since` in that partition, so start at its end
        self._consumer.assign([TopicPartition(self.topic, tp.partition, tp.offset if tp.offset >= 0 else -1)
                               for tp in found])
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._consumer.poll(0.1)
            if msg is None:
                continue
            self._take(msg)
            for msg in self._consumer.consume(500, timeout=0):
                self._take(msg)

    def _take(self, msg) -> None:
        if msg.error() or msg.value() is None:
            return
        try:
            _, r = codec.decode(msg.value())
        except codec.DecodeError:  # the sink dead-letters it; it changes no window
            log.warning("undecodable vitals record at %s[%d]@%d", self.topic, msg.partition(), msg.offset())
            return
        self.limiter.mark((r["tenant"], r["agent_id"]), r["recorded_at"], r["id"])
