"""Gauges read from the database when ``/metrics`` is scraped.

Each is one cheap, indexed query in one short read-only transaction (on Postgres with a
statement timeout, so a slow database cannot hold a scrape): the inbox (status,
received_at), unfinished tasks (status, run_after), cases by status (status). When the
database does not answer, the scrape still succeeds: ``casehook_database_up`` says 0 and
these gauges are left out.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.cases.models import Case
from app.extensions import db
from app.logs import log
from app.tasks.models import UNFINISHED, Task
from app.webhooks import inbox

#: Longest a scrape-time query may run on Postgres (milliseconds).
QUERY_TIMEOUT_MS = 2000


class DatabaseCollector(Collector):
    """Collects the database gauges; used inside a request (it needs an app context)."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "casehook_database_up", "1 when the scrape-time database queries answered."
        )
        try:
            metrics = list(self._read())
        except SQLAlchemyError as exc:
            db.session.rollback()
            log.warning("metrics.database_failed", error=f"{exc.__class__.__name__}: {exc}"[:500])
            up.add_metric([], 0)
            yield up
            return
        finally:
            db.session.rollback()
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _read(self) -> Iterator[Metric]:
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text(f"SET LOCAL statement_timeout = {int(QUERY_TIMEOUT_MS)}"))
        depth, oldest = inbox.waiting_stats()
        yield GaugeMetricFamily(
            "casehook_inbox_deliveries",
            "Deliveries acknowledged and waiting to be processed (received, or failed with "
            "a retry due).",
            value=depth,
        )
        yield GaugeMetricFamily(
            "casehook_inbox_oldest_age_seconds",
            "Seconds since the oldest waiting delivery arrived (0 when the inbox is empty).",
            value=oldest,
        )
        tasks = GaugeMetricFamily(
            "casehook_tasks",
            "Unfinished tasks by kind and state (queued, running); agent runs are the kinds "
            "agent.*. Finished ones: casehook_tasks_finished_total.",
            labels=["kind", "state"],
        )
        rows = db.session.execute(
            db.select(Task.kind, Task.status, db.func.count())
            .where(Task.status.in_(UNFINISHED))
            .group_by(Task.kind, Task.status)
        ).all()
        for kind, state, count in rows:
            tasks.add_metric([kind, state], count)
        yield tasks
        cases = GaugeMetricFamily("casehook_cases", "Cases by status.", labels=["status"])
        rows = db.session.execute(
            db.select(Case.status, db.func.count()).group_by(Case.status)
        ).all()
        for status, count in rows:
            cases.add_metric([status], count)
        yield cases
