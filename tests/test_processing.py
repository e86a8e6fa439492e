"""Every GitHub fixture through the real route and a real RQ worker, on SQLite and Postgres."""

import copy

from sqlalchemy import event as sa_event

from app.cases.models import Case
from app.events.models import CaseEvent
from app.extensions import db
from app.webhooks import processing
from app.webhooks.models import Delivery
from tests.conftest import BOTH_DATABASES, fixture_payload

# The order a real repository would produce them in.
HISTORY = [
    "issues.opened",
    "pull_request.opened",
    "issue_comment.created",
    "issues.edited",
    "issues.reopened",
    "pull_request.closed",
    "check_run.completed",
    "workflow_run.completed",
    "push",
    "ping",
]


def _cases(app):
    with app.app_context():
        return {
            case.dedup_key: (
                case.status,
                case.closed_reason,
                case.delivery_count,
                [event.type for event in case.events],
            )
            for case in db.session.scalars(db.select(Case)).all()
        }


def _outcomes(app):
    with app.app_context():
        return {
            d.event_type: (d.status, d.outcome)
            for d in db.session.scalars(db.select(Delivery)).all()
        }


@BOTH_DATABASES
def test_every_fixture_becomes_the_right_cases(app, github, drain):
    for name in HISTORY:
        assert github.send_fixture(name).status_code in (200, 202), name
    assert drain() == 0

    assert _cases(app) == {
        "Codertocat/Hello-World#1": (
            "open",
            None,
            4,
            ["case.opened", "case.updated", "case.updated", "case.updated"],
        ),
        "Codertocat/Hello-World#2": ("closed", "auto", 2, ["case.opened", "case.closed"]),
    }
    outcomes = _outcomes(app)
    assert all(status == "processed" for status, _ in outcomes.values())
    assert outcomes["push"][1] == "no command matched; recorded only"
    assert outcomes["check_run.completed"][1].endswith("no case to close")
    assert outcomes["workflow_run.completed"][1].endswith("no case to close")
    with app.app_context():
        issue = db.session.scalars(
            db.select(Case).filter_by(dedup_key="Codertocat/Hello-World#1")
        ).one()
        assert issue.title == "Spelling error in the README file (Codertocat/Hello-World#1)"
        assert issue.source_url == "https://github.com/Codertocat/Hello-World/issues/1"
        assert issue.provider == "github"
        comment = next(
            e for e in issue.events if e.payload["event_type"] == "issue_comment.created"
        )
        assert comment.payload["summary"].startswith("Codertocat commented: You are totally right")
        # Each event names the stored delivery that caused it.
        for event in issue.events:
            assert db.session.get(Delivery, event.causation_id).case_id == issue.id


@BOTH_DATABASES
def test_redelivery_and_a_second_job_run_change_nothing(app, github, drain):
    github.send_fixture("issues.opened", delivery_id="abc")
    assert drain() == 0
    before = _cases(app)
    assert github.send_fixture("issues.opened", delivery_id="abc").status_code == 200
    with app.app_context():
        delivery_pk = db.session.scalar(db.select(Delivery.id))
        assert processing.process_delivery(delivery_pk) == "already processed"
    assert drain() == 0
    assert _cases(app) == before
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(CaseEvent.id))) == 1


@BOTH_DATABASES
def test_failed_workflow_opens_a_case_and_success_closes_it(app, github, drain):
    failed = fixture_payload("workflow_run.completed")
    failed["workflow_run"]["conclusion"] = "failure"
    github.send("workflow_run", failed)
    assert drain() == 0
    key = "octo-org/octo-repo:ci:test@master"
    assert _cases(app) == {key: ("open", None, 1, ["case.opened"])}
    with app.app_context():
        case = db.session.scalars(db.select(Case)).one()
        assert case.severity == "error"
        assert case.title == "test failure on master in octo-org/octo-repo"

    github.send_fixture("workflow_run.completed")  # conclusion: success
    assert drain() == 0
    assert _cases(app)[key][:2] == ("closed", "auto")

    timed_out = copy.deepcopy(failed)
    timed_out["workflow_run"]["conclusion"] = "timed_out"
    github.send("workflow_run", timed_out)
    assert drain() == 0
    assert _cases(app)[key] == ("open", None, 3, ["case.opened", "case.closed", "case.reopened"])


@BOTH_DATABASES
def test_failed_check_run_is_keyed_by_check_name_and_branch(app, github, drain):
    failed = fixture_payload("check_run.completed")
    failed["check_run"]["conclusion"] = "failure"
    github.send("check_run", failed)
    other_branch = copy.deepcopy(failed)
    other_branch["check_run"]["check_suite"]["head_branch"] = "main"
    github.send("check_run", other_branch)
    assert drain() == 0
    assert set(_cases(app)) == {
        "Codertocat/Hello-World:ci:Octocoders-linter@changes",
        "Codertocat/Hello-World:ci:Octocoders-linter@main",
    }


def test_failed_workflow_job_opens_a_case(app, github, drain):
    github.send(
        "workflow_job",
        {
            "action": "completed",
            "workflow_job": {
                "name": "build",
                "workflow_name": "CI",
                "head_branch": "main",
                "conclusion": "failure",
                "html_url": "https://github.com/o/r/job/1",
            },
            "repository": {"full_name": "o/r"},
        },
    )
    assert drain() == 0
    assert _cases(app) == {"o/r:ci:CI@main": ("open", None, 1, ["case.opened"])}


def test_comment_on_a_pull_request_lands_on_its_case(app, github, drain):
    github.send_fixture("pull_request.opened")
    comment = fixture_payload("issue_comment.created")
    comment["issue"]["number"] = 2
    comment["issue"]["pull_request"] = {"url": "https://api.github.com/repos/x/pulls/2"}
    github.send("issue_comment", comment)
    assert drain() == 0
    assert _cases(app)["Codertocat/Hello-World#2"][3] == ["case.opened", "case.updated"]


def test_activity_before_the_opening_creates_the_case(app, github, drain):
    github.send_fixture("issues.edited")
    assert drain() == 0
    assert _cases(app) == {"Codertocat/Hello-World#1": ("open", None, 1, ["case.opened"])}


def test_closing_an_unknown_issue_opens_nothing(app, github, drain):
    github.send_fixture("pull_request.closed")
    assert drain() == 0
    assert _cases(app) == {}
    assert _outcomes(app)["pull_request.closed"][1] == "github.close: no case to close"


def test_null_and_empty_fields_never_crash_processing(app, github, drain):
    payloads = [
        {"action": "opened", "issue": None, "repository": None},
        {"action": "opened", "issue": {"number": 5, "title": None}},
        {"action": "opened", "issue": {"number": 6, "title": "   "}, "repository": {}},
        {"action": "created", "issue": {"number": 7}, "comment": None, "sender": None},
        {"action": None},
        {},
    ]
    for payload in payloads:
        assert github.send("issues", payload).status_code == 202
    github.send("issue_comment", payloads[3])
    github.send("workflow_run", {"action": "completed", "workflow_run": None})
    github.send(
        "check_run", {"action": "completed", "check_run": {"conclusion": "failure", "name": None}}
    )
    assert drain() == 0
    with app.app_context():
        titles = sorted(db.session.scalars(db.select(Case.title)).all())
        statuses = {d.status for d in db.session.scalars(db.select(Delivery)).all()}
    assert "Untitled issue (unknown repository#5)" in titles
    assert "check run failure on unknown branch in unknown repository" in titles
    assert statuses == {"processed"}


def test_attacker_controlled_title_is_stored_as_text(app, github, drain):
    payload = fixture_payload("issues.opened")
    payload["issue"]["title"] = "<script>alert(1)</script>"
    github.send("issues", payload)
    assert drain() == 0
    with app.app_context():
        assert db.session.scalar(db.select(Case.title)).startswith("<script>alert(1)</script>")


@BOTH_DATABASES
def test_a_batch_is_one_transaction_in_arrival_order(app, github, monkeypatch):
    """``process_batch``: one claim and one commit for several deliveries; their events get
    consecutive positions in the order the deliveries arrived, one case counts all three."""
    monkeypatch.setattr(processing, "_batch_size", 10)
    for name in ("issues.opened", "pull_request.opened", "issues.edited", "issues.reopened"):
        github.send_fixture(name)
    with app.app_context():
        pks = db.session.scalars(
            db.select(Delivery.id).order_by(Delivery.received_at, Delivery.id)
        ).all()
        db.session.rollback()
        commits = []
        sa_event.listen(db.session(), "after_commit", lambda _s: commits.append(1))
        assert processing.process_batch(pks) == 4
        assert len(commits) == 1
        statuses = db.session.scalars(db.select(Delivery.status)).all()
        assert statuses == ["processed"] * 4
        events = db.session.scalars(db.select(CaseEvent).order_by(CaseEvent.seq)).all()
        assert [e.delivery_pk for e in events] == pks
        assert [e.seq for e in events] == list(range(events[0].seq, events[0].seq + 4))
        assert [e.lamport for e in events] == sorted(e.lamport for e in events)
        counts = db.session.scalars(db.select(Case.delivery_count).order_by(Case.id)).all()
        assert counts == [3, 1]


@BOTH_DATABASES
def test_a_batch_costs_the_same_few_statements_however_many_deliveries(app, github, monkeypatch):
    """Guards the drain's cost (issue 8): a batch of deliveries updating cases runs a fixed
    number of statements (claim, the batch's cases in one read, the event positions, one
    ``executemany`` per table, no statement per delivery); opening a case costs its own
    INSERTs but no lookups. Counts, not timings."""
    issues = 12

    def send(number: int, action: str) -> None:
        payload = fixture_payload("issues.opened")
        payload["action"] = action
        payload["issue"].update(number=number, id=10_000 + number)
        payload["issue"]["html_url"] = f"https://github.com/o/r/issues/{number}"
        github.send("issues", payload)

    def batch_statements() -> tuple[int, list[str]]:
        with app.app_context():
            pks = db.session.scalars(
                db.select(Delivery.id)
                .where(Delivery.status == "received")
                .order_by(Delivery.received_at, Delivery.id)
            ).all()
            db.session.rollback()
            processing.endpoint_setup(db.session.get(Delivery, pks[0]))  # cached, as usual
            db.session.rollback()
            statements: list[str] = []

            def count(_conn, _cursor, statement, _params, _context, _many) -> None:
                statements.append(statement.split(None, 3)[:3])

            monkeypatch.setattr(processing, "_batch_size", 100)  # it adapts after each batch
            sa_event.listen(db.engine, "before_cursor_execute", count)
            try:
                assert processing.process_batch(pks) == len(pks)
            finally:
                sa_event.remove(db.engine, "before_cursor_execute", count)
            return len(pks), statements

    for number in range(issues):
        send(number, "opened")
    opened, statements = batch_statements()
    assert opened == issues
    # Per new case: its INSERT and its root branch's; nothing looked up one by one.
    # Nothing is looked up one case at a time: neither the case nor its root branch.
    selects = [s for s in statements if s[0] == "SELECT"]
    assert len(selects) <= 3, selects  # the batch's cases, the endpoint, the subscriptions
    # Two per case (its INSERT and its root branch's, each … RETURNING its id), the rest
    # written together: 37 on SQLite, 39 on Postgres (at 5565cc2: 101 and 103, 26 SELECTs).
    assert len(statements) <= 2 * issues + 16, statements
    for _round in range(2):
        for number in range(issues):
            send(number, "edited")
    updated, statements = batch_statements()
    assert updated == 2 * issues
    # The claim, the cases, the subscriptions (whose read flushes the first delivery), the
    # event positions, then one statement per table and set of columns: 12 for 24
    # deliveries (at 5565cc2: 24).
    assert len(statements) <= 12, statements
    with app.app_context():
        counts = db.session.scalars(db.select(Case.delivery_count).order_by(Case.id)).all()
        assert counts == [3] * issues
        assert db.session.scalar(db.select(db.func.count(CaseEvent.id))) == 3 * issues
