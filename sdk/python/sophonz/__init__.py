"""Sophonz: a client of the application-monitoring API (/v1), standard library only.

    from sophonz import Client
    client = Client(api_key='your-api-key')
    apps = client.applications.list()
    print(apps)
"""
from .client import DEFAULT_BASE_URL, Client, __version__
from .errors import SophonzError

__all__ = ["Client", "SophonzError", "DEFAULT_BASE_URL", "__version__"]
