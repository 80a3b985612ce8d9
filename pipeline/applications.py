"""Configuration records of /v1 (applications, alert rules, account plans): every api process keeps
them all in memory from a compacted, single-partition topic (message key = record id,
a tombstone deletes), so reads are local and a writer sees its own write at once."""
from schemas import codec

from .topic_table import TopicTable

STATUSES = ("active", "inactive", "maintenance")
ENVIRONMENTS = ("production", "staging", "development", "test")


class ConfigRegistry(TopicTable):
    def __init__(self, bootstrap: str, topic: str):
        self.by_id: dict[str, dict] = {}
        super().__init__(bootstrap, topic, self._put)

    def _put(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.by_id.pop(key.decode(), None)
        else:
            self.by_id[key.decode()] = codec.decode(value)[1]

    def get(self, tenant: str, record_id: str) -> dict | None:
        """The record if it exists and belongs to `tenant`; another account's is None."""
        record = self.by_id.get(record_id)
        return record if record is not None and record["tenant"] == tenant else None

    def of(self, tenant: str) -> list[dict]:
        return sorted((r for r in self.by_id.values() if r["tenant"] == tenant),
                      key=lambda r: (r["created_at"], r["id"]))
