"""Applications (/v1): every api process keeps them all in memory from the compacted
`app.applications` topic, so reads are local and a writer sees its own write at once."""
from schemas import codec

from .topic_table import TopicTable

STATUSES = ("active", "inactive", "maintenance")
ENVIRONMENTS = ("production", "staging", "development", "test")


class ApplicationRegistry(TopicTable):
    def __init__(self, bootstrap: str, topic: str):
        self.by_id: dict[str, dict] = {}
        super().__init__(bootstrap, topic, self._put)

    def _put(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.by_id.pop(key.decode(), None)
        else:
            self.by_id[key.decode()] = codec.decode(value)[1]

    def get(self, tenant: str, app_id: str) -> dict | None:
        """The application if it exists and belongs to `tenant`; another account's is None."""
        app = self.by_id.get(app_id)
        return app if app is not None and app["tenant"] == tenant else None

    def of(self, tenant: str) -> list[dict]:
        return sorted((a for a in self.by_id.values() if a["tenant"] == tenant),
                      key=lambda a: (a["created_at"], a["id"]))
