"""Fault injection for the worker processes tests start: with this folder on PYTHONPATH
and SOPHRA_FAULT_SLOW_SEEK_S set, faust's seek to the committed offsets at the end of a
rebalance waits that long first, as on a loaded broker. Table recovery's last fetch
then returns while the seek is pending, the window in which faust used to drop a
restarted worker's backlog (pipeline/worker/resume.py)."""
import os

if os.environ.get("SOPHRA_FAULT_SLOW_SEEK_S"):
    import asyncio

    from faust.transport.consumer import Consumer

    _perform_seek = Consumer.perform_seek

    async def _slow_seek(self):
        await asyncio.sleep(float(os.environ["SOPHRA_FAULT_SLOW_SEEK_S"]))
        return await _perform_seek(self)

    Consumer.perform_seek = _slow_seek
