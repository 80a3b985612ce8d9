"""Two fixes to how faust-streaming 0.15 resumes the stream after a rebalance's table
recovery; each lost records in a worker restarted after SIGKILL (the ARI, replay and
budget restart tests caught them).

1. Fetching from partitions that are paused. The fetcher hands aiokafka the consumer's
   live set of active partitions; the recovery empties it (pausing the changelogs) while
   the fetch is in flight, and aiokafka reads an empty set as "every partition". The
   paused stream partitions' records come back, faust drops them as not active, and
   aiokafka's position has moved past them. The seek to the committed offsets brings
   them back only when the group has committed one (aiokafka skips the seek otherwise):
   a worker killed before its first commit lost the whole backlog.
   `SnapshotFetchConsumer` fetches for a copy of the set taken when the fetch starts.

2. Resuming before seeking. `Recovery.on_recovery_completed` resumes the stream
   partitions, awaits the seek to the committed offsets, then resumes flow control,
   which clears every stream's queue (`FlowControlQueue(clear_on_resume=True)`). Records
   fetched while the seek was in flight were queued and are dropped; the fetcher marked
   their offsets read, so it skips them when the seek brings them back, and the agents
   go on after them (the group's commit then stalls before the gap). faust#216 fixed the
   same order in `_resume_streams`, the path of apps without tables. `SeekFirstRecovery`
   seeks while the stream partitions are paused, resumes flow control (clearing queues
   that can hold no stream record yet), and only then resumes the stream partitions.
"""
import asyncio

import faust
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import Consumer


class SnapshotFetchConsumer(Consumer):
    async def _getmany(self, active_partitions, timeout):
        if active_partitions is None:  # a client-only app: every partition, by design
            return await super()._getmany(None, timeout)
        wanted = set(active_partitions)  # taken before the fetch yields: the set changes under it
        if not wanted:
            return {}
        return await super()._getmany(wanted, timeout)


class SeekFirstRecovery(Recovery):
    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        consumer = self.app.consumer
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        await asyncio.gather(*(table.on_recovery_completed(self.actives_for_table[table],
                                                            self.standbys_for_table[table])
                               for table in self.tables.values()))
        assignment = consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again (generation %s, now %s)", generation_id,
                             self.app.consumer_generation_id)
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
        self.completed.set()
        self.app.flow_control.resume()  # clears the queues: before any stream record can be in them
        consumer.resume_flow()
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        await self.app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")


class SeekFirstTableManager(TableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = SeekFirstRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


class WorkerApp(faust.App):
    """faust.App with both fixes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, TableManager=SeekFirstTableManager, **kwargs)

    def _new_consumer(self):
        self.transport.Consumer = SnapshotFetchConsumer
        return super()._new_consumer()
