"""Application metrics (/v1/applications/{id}/metrics).

The write path, the rollups and the granular query are the next step of issue 5; until
then no metric data exists, and the 24 h summary of an application says so (null).
"""
from fastapi import Request


async def summary_24h(request: Request, tenant: str, app_id: str) -> dict:
    """uptime, response_time and error_rate over the last 24 h; null without data."""
    return {"uptime": None, "response_time": None, "error_rate": None}
