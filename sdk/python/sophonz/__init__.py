"""Sophonz: clients of a Sophra / Sophonz server, standard library only.

Application monitoring (/v1, reference 000):

    from sophonz import Client
    client = Client(api_key='your-api-key')
    apps = client.applications.list()
    print(apps)

Agent monitoring (/api, reference 003): `AgentClient` (blocking), `AsyncAgentClient`
(asyncio) and `AgentClient.background()` (a `BackgroundReporter` that never blocks).
"""
from .agents import AgentClient, AsyncAgentClient
from .background import BackgroundReporter
from .client import DEFAULT_BASE_URL, Client, __version__
from .errors import SophonzError

__all__ = ["Client", "AgentClient", "AsyncAgentClient", "BackgroundReporter", "SophonzError", "DEFAULT_BASE_URL",
           "__version__"]
