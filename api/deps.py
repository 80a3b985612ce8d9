"""Shared objects of the api process, reached by routes through `Annotated` dependencies."""
from typing import Annotated

from fastapi import Depends, Request

from pipeline.accounts import KeyRegistry
from pipeline.ids import IdGenerator
from pipeline.limits import IntervalLimiter
from pipeline.producer import RecordProducer
from pipeline.store.clickhouse import Store
from sophra.settings import Settings


def _state(name: str):
    # async: FastAPI runs a plain `def` dependency on its thread pool, a thread hop per
    # dependency per request for one attribute read.
    async def get(request: Request):
        return getattr(request.app.state, name)
    return Depends(get)


SettingsDep = Annotated[Settings, _state("settings")]
ProducerDep = Annotated[RecordProducer, _state("producer")]
StoreDep = Annotated[Store, _state("store")]
IdsDep = Annotated[IdGenerator, _state("ids")]
KeysDep = Annotated[KeyRegistry, _state("keys")]
LimiterDep = Annotated[IntervalLimiter, _state("vitals_limiter")]
