"""RQ jobs of the webhooks feature: thin wrappers that push an app context and call the
domain (``app/webhooks/inbox.py``)."""

from __future__ import annotations

from app.tasks.context import job_context


def process_inbox(partition: int) -> int:
    """RQ job: drain inbox partition ``partition``; returns how many deliveries it processed."""
    from app.webhooks import inbox

    with job_context():
        return inbox.process_partition(int(partition))
