"""A writer process for the event-stream tests: ``python tests/events_writer.py DB_URL
REDIS_URL CASE_ID NAME COUNT [PER_TRANSACTION] [MAX_HOLD_SECONDS]``.

Writes ``COUNT`` ``case.tagged`` events on case ``CASE_ID`` through ``record_event``,
``PER_TRANSACTION`` per commit, holding each transaction open for a random time up to
``MAX_HOLD_SECONDS`` after the events are flushed, and again after they are stamped (so
commits interleave across writers).
Prints one JSON line: ``{"name", "ids": [event ids in commit order]}``.
"""

from __future__ import annotations

import json
import random
import sys
import time


def main(argv: list[str]) -> None:
    url, redis_url, case_id, name, count = argv[:5]
    per = int(argv[5]) if len(argv) > 5 else 1
    hold = float(argv[6]) if len(argv) > 6 else 0.0
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from app import create_app
    from app.cases.models import Case
    from app.events.record import record_event
    from app.extensions import db

    @event.listens_for(Session, "before_commit")
    def slow_commit(_session):  # after the stamp (registered later): a slow disk, say
        if hold:
            time.sleep(random.uniform(0, hold))

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url,
                      "SECRET_KEY": "test", "TESTING": True})  # fmt: skip
    ids: list[str] = []
    with app.app_context():
        written = 0
        while written < int(count):
            case = db.session.get(Case, int(case_id))
            batch = []
            for _ in range(min(per, int(count) - written)):
                tag = f"{name}-{written}"
                payload = {"tags": [tag], "added": [tag], "removed": []}
                batch.append(record_event(case, "case.tagged", actor=name, payload=payload))
                written += 1
            db.session.flush()  # ids made, rows written; stamped at the commit
            if hold:
                time.sleep(random.uniform(0, hold))
            db.session.commit()
            ids.extend(event.id for event in batch)
    print(json.dumps({"name": name, "ids": ids}))


if __name__ == "__main__":
    main(sys.argv[1:])
