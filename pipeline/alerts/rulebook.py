"""Every alert rule, in memory, by subject: the worker's view of `app.alert_rules`.

The api keeps the same topic as a ConfigRegistry (by id); the worker also needs a
subject's rules for each record it reads, so this one keeps an index by (tenant, scope,
subject) too. Records are applied on the reader thread; the index maps to tuples that
are replaced whole, so the worker's event loop never sees one half-updated.
"""
import logging

from ..applications import ConfigRegistry
from ..topics import entity_key
from .conditions import Rule

log = logging.getLogger("sophra.alerts")


class RuleBook(ConfigRegistry):
    def __init__(self, bootstrap: str, topic: str):
        self.by_subject: dict[tuple[str, str, str], tuple[Rule, ...]] = {}
        super().__init__(bootstrap, topic)

    def _put(self, key: bytes, value: bytes | None) -> None:
        old = self.by_id.get(key.decode())
        super()._put(key, value)
        new = self.by_id.get(key.decode())
        if old is not None:
            self._index(old, remove=True)
        if new is not None:
            self._index(new, remove=False)

    def _index(self, record: dict, remove: bool) -> None:
        try:
            rule = Rule.from_record(record)
        except (KeyError, ValueError) as exc:  # the api validates rules; an old or foreign record is skipped
            log.warning("skipping alert rule %s: %s", record.get("id"), exc)
            return
        at = (rule.tenant, rule.scope, rule.subject_id)
        rules = tuple(r for r in self.by_subject.get(at, ()) if r.id != rule.id)
        if not remove:
            rules += (rule,)
        if rules:
            self.by_subject[at] = rules
        else:
            self.by_subject.pop(at, None)

    def for_subject(self, tenant: str, scope: str, subject_id: str) -> tuple[Rule, ...]:
        return self.by_subject.get((tenant, scope, subject_id), ())

    def subjects(self, scope: str) -> dict[bytes, tuple[Rule, ...]]:
        """Every subject of `scope` that has rules, by its record key (<tenant>/<id>)."""
        return {entity_key(t, s): rules for (t, sc, s), rules in list(self.by_subject.items()) if sc == scope}
