"""``flask demo``'s first look beyond the samples: a few more incidents (Standard Webhooks
messages sent through the real route), cases in every state, and one worked case.

The worked case goes through the domain functions a person's clicks call (branches,
handoffs, outputs, lifecycle), each as a demo engineer, so its timeline, branch map,
handoff history and outputs look as they would after a real incident. Everything here is
idempotent: a case already worked, acknowledged or handed off is left alone.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import timedelta

from app import clock
from app.accounts import service as accounts
from app.accounts.models import User
from app.branches import service as branches
from app.cases import lifecycle
from app.cases.models import Case
from app.cases.service import find_case
from app.extensions import db
from app.handoffs import service as handoffs
from app.outputs import service as outputs
from app.tasks import Task, run_task
from app.webhooks import inbox
from app.webhooks.models import Endpoint
from app.webhooks.providers.base import Sample

#: The demo's engineers (no password anyone knows: they are names on the timeline).
ANA, BEN = "ana@example.com", "ben@example.com"

WORKED = "mon_checkout_5xx"
#: The provider whose demo endpoint receives the incidents.
PROVIDER = "standard"

#: More incidents, as a monitoring tool speaking Standard Webhooks would send them.
#: ``state``: what the demo does with the case once it exists.
INCIDENTS = [
    {"id": WORKED, "severity": "critical", "state": "worked",
     "title": "Checkout API answers 502 for 12% of requests in eu-west-1",
     "service": "checkout-api", "region": "eu-west-1",
     "description": "The **5xx rate** of `POST /v1/checkout` crossed 5% at 14:02 UTC and "
                    "holds at 12%. The errors come from the load balancer (502), not the "
                    "app; p99 latency is up from 310 ms to 2.4 s."},
    {"id": "mon_payments_backlog", "severity": "critical", "state": "new",
     "title": "Payments queue backlog above 5,000 messages",
     "service": "payments-worker", "region": "eu-west-1",
     "description": "`payments.capture` has 5,312 messages waiting; consumers are up but "
                    "acknowledge about 40 a minute (normally 900)."},
    {"id": "mon_db_replica_disk", "severity": "error", "state": "escalated",
     "title": "Disk 91% full on db-replica-2", "service": "postgres", "region": "us-east-1",
     "description": "`/var/lib/postgresql` grows 2% an hour; WAL files are not being "
                    "recycled since the replication slot `analytics` stopped."},
    {"id": "mon_invoice_export", "severity": "warning", "state": "parked",
     "title": "Nightly invoice export did not run", "service": "billing-cron",
     "region": "eu-west-1",
     "description": "The 02:00 export job has no run recorded for last night."},
    {"id": "mon_tls_expiry", "severity": "info", "state": "acknowledged",
     "title": "TLS certificate for api.example.com expires in 14 days", "service": "edge",
     "region": "global",
     "description": "Auto-renewal failed twice: the DNS challenge record was not found."},
]  # fmt: skip


@dataclass
class Staged:
    """What ``stage`` did, for the CLI to say."""

    worked: Case | None = None
    worked_now: bool = False
    states: dict[str, list[int]] = field(default_factory=dict)


def incident_samples() -> list[tuple[Sample, str]]:
    """The incidents as ``(sample, delivery id)``: a fixed delivery id per incident, so
    sending them again is a duplicate (it would otherwise reopen a resolved case)."""
    headers = {"Content-Type": "application/json", "User-Agent": "Casehook-Demo/1.0"}
    found = []
    for incident in INCIDENTS:
        body = {
            "type": "monitor.triggered",
            "timestamp": clock.now().isoformat(),
            "title": incident["title"],
            "severity": incident["severity"],
            "url": f"https://status.example.com/monitors/{incident['id']}",
            "description": incident["description"],
            "data": {
                "id": incident["id"],
                "service": incident["service"],
                "region": incident["region"],
            },
        }
        sample = Sample(incident["id"], headers, json.dumps(body).encode())
        found.append((sample, f"demo_{incident['id']}"))
    return found


def process_waiting(wait_seconds: float = 30.0) -> int:
    """Turn the deliveries waiting in the inbox into cases now, in this process (a worker
    that holds a partition does its part); returns how many are still waiting after
    ``wait_seconds``. ``RedisError`` when Redis is unreachable (the leases live there)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        for partition in inbox.waiting_partitions(0):
            inbox.process_partition(partition)
        left = inbox.pending_deliveries()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.3)


def _person(email: str) -> User:
    user = accounts.find_user(email)
    if user is None:
        user, _ = accounts.create_user(email, "engineer")
    return user


def _demo_case(endpoint: Endpoint, incident_id: str) -> Case | None:
    return find_case(endpoint.id, incident_id)


def stage(endpoint: Endpoint) -> Staged:
    """Put the incident cases of ``endpoint`` (the demo's Standard Webhooks endpoint) in
    their states and work the worked case; commits. Cases not there yet are skipped."""
    staged = Staged()
    ana, ben = _person(ANA), _person(BEN)
    started = clock.now()
    for incident in INCIDENTS:
        case = _demo_case(endpoint, incident["id"])
        if case is None:
            continue
        state = incident["state"]
        if state == "worked":
            staged.worked = case
            staged.worked_now = _work(case, ana, ben)
        elif state == "acknowledged" and case.acknowledged_at is None:
            lifecycle.acknowledge(case, actor=ben)
        elif state in ("escalated", "parked") and case.status == "open":
            _hand_off(case, state, ana)
        db.session.commit()
        staged.states.setdefault(state, []).append(case.id)
    _run_own_tasks(started)
    if staged.worked is not None:
        db.session.refresh(staged.worked)
        if staged.worked_now:
            for output in outputs.outputs_of(staged.worked):
                if output.status == "draft":
                    outputs.set_status(output, "approved", actor=ben)
            db.session.commit()
    return staged


def _hand_off(case: Case, state: str, actor: User) -> None:
    if state == "escalated":
        lifecycle.assign(case, actor, actor=actor)
        handoffs.create_handoff(
            case,
            "escalate",
            "Growing 2% an hour; the cleanup job needs a DBA's eyes before it deletes WAL.",
            "elevated",
            actor,
            next_step="Check which replication slot holds the WAL back",
        )
    else:
        resume = clock.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=18)
        handoffs.create_handoff(
            case,
            "park",
            "The export moved to the new scheduler last week; Finance says the schedule "
            "may have changed on purpose.",
            "normal",
            actor,
            waiting_on="Finance (Priya) to confirm the new export schedule",
            resume_at=resume,
        )


def _work(case: Case, ana: User, ben: User) -> bool:
    """The worked case's story; False (nothing done) when it was worked already."""
    if case.status != "open" or handoffs.handoffs_of(case):
        return False
    lifecycle.acknowledge(case, actor=ana)
    lifecycle.assign(case, ana, actor=ana)
    root = branches.active_branch(case)
    branches.add_note(
        root,
        "502s started at 14:02 UTC, two minutes after **v2.42** went out; 12% of checkout "
        "requests, flat since. Only eu-west-1.",
        actor=ana,
    )
    deploy, pool, _ = branches.fork(
        case,
        "The timing points at the deploy, but the database proxy was also near its limit",
        [
            {"label": "Bad deploy", "description": "v2.42 changed the checkout client; roll back"},
            {
                "label": "Connection pool exhausted",
                "description": "pgbouncer in eu-west-1 was at 18/20 connections this morning",
            },
            {"label": "Load balancer health checks", "description": "One target flapping?"},
        ],
        actor=ana,
    )
    branches.switch(case, deploy, actor=ana)
    branches.add_note(
        deploy, "Rolled back to v2.41 at 14:20. Ten minutes later: still 12% 502s.", actor=ana
    )
    branches.set_status(
        deploy, "dead_end", "Rollback to v2.41 did not change the 502 rate", actor=ana
    )
    handoff = handoffs.create_handoff(
        case,
        "escalate",
        "Not the deploy. The pool graphs look saturated but I do not know pgbouncer well "
        "enough to change it under load.",
        "elevated",
        ana,
        next_step="Check pgbouncer's pool usage in eu-west-1",
    )
    handoffs.claim(handoff, ben)
    branches.switch(case, pool, actor=ben)
    branches.add_note(
        pool,
        "`SHOW POOLS`: 20/20 server connections, 180 clients waiting. Raised "
        "`default_pool_size` to 60 and reloaded.",
        actor=ben,
    )
    branches.set_status(
        pool,
        "solved",
        "Raised the pgbouncer pool from 20 to 60; the 502s stopped within two minutes",
        actor=ben,
    )
    db.session.commit()
    outputs.resolve_case(  # commits, with the task that writes the three outputs
        case,
        "Raised pgbouncer's pool size in eu-west-1 from 20 to 60: checkout requests were "
        "waiting for a database connection and timing out at the load balancer (502). "
        "Follow-up: alert on pool saturation above 80%.",
        actor=ben,
    )
    return True


def _run_own_tasks(since) -> None:
    """Run, here, the tasks the staging asked for (the outputs, the assessments, the
    briefing), so the first look is complete before any worker starts."""
    ids = db.session.scalars(
        db.select(Task.id).where(Task.created_at >= since, Task.status == "queued")
    ).all()
    db.session.rollback()
    for task_id in ids:
        run_task(task_id)
