"""Resolution outputs (SPEC C6): resolve a case, write its three documents, work them.

Plain functions that tests call without HTTP. Writes happen in the caller's session and each
function commits where it says so (resolving commits the resolved case together with the
task that writes its outputs, ``app/outputs/jobs.py``). Every change writes its case event
in the same transaction: ``case.resolved`` (by the lifecycle), ``output.generated``,
``output.edited``, ``output.approved``, ``output.rejected``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from app import clock, writing
from app.cases import lifecycle
from app.cases.lifecycle import CaseInputError
from app.cases.models import Case
from app.errors import DomainError
from app.events.models import CaseEvent
from app.events.record import record_event
from app.extensions import db
from app.logs import log
from app.outputs.models import ResolutionOutput, kind_order
from app.writing import KIND_LABELS, KINDS, Written
from app.writing.context import case_context

#: Longest resolution summary and output content accepted (characters).
SUMMARY_LIMIT = 10_000
CONTENT_LIMIT = 200_000
#: Statuses a person may set (draft comes back by editing or regenerating).
DECISIONS = ("approved", "rejected")


class OutputInputError(CaseInputError):
    """A value given for an output is not acceptable (400); the message says what is."""


class OutputConflict(DomainError):
    """The output is not in a state that allows this (409); the message says what does."""

    status, error = 409, "output_conflict"


@dataclass
class Resolution:
    """What ``resolve_case`` did: the ``case.resolved`` event, and whether the task that
    writes the outputs is queued (always: it is committed with the resolution)."""

    event: CaseEvent
    queued: bool


def resolve_case(case: Case, summary: str, actor: Any = None) -> Resolution:
    """Resolve ``case`` with ``summary`` (what fixed it) and commit it with the task that
    writes the outputs.

    Raises ``OutputInputError`` for an empty or over-long summary and
    ``lifecycle.TransitionError`` (409) when the case cannot be resolved from its status;
    nothing is changed then. ``actor`` is the acting ``User``.
    """
    summary = _clean_text(summary)
    if not summary:
        raise OutputInputError("a resolution summary is required: say what fixed it")
    if len(summary) > SUMMARY_LIMIT:
        raise OutputInputError(f"the resolution summary is over {SUMMARY_LIMIT} characters")
    event = lifecycle.transition(case, "resolved", actor=actor, payload={"summary": summary})
    case.resolution_summary = summary
    from app.outputs.jobs import enqueue_write

    enqueue_write(case.id, actor=_email(actor))
    db.session.commit()
    return Resolution(event, True)


def request_write(case: Case, actor: Any = None) -> bool:
    """Ask for all three outputs to be written again for a resolved (or closed) case, and
    commit: for when the first task failed. Raises ``OutputConflict`` for a case that is
    not resolved or closed. Returns True (queued, or already on its way).
    """
    if case.status not in ("resolved", "closed"):
        raise OutputConflict(
            f"a {case.status} case has no resolution to write up; resolve it first"
        )
    from app.outputs.jobs import enqueue_write

    enqueue_write(case.id, actor=_email(actor))
    db.session.commit()
    return True


def request_regenerate(output: ResolutionOutput, keep_edits: bool, actor: Any = None) -> bool:
    """Ask for ``output`` to be written again (see ``regenerate``) and commit; True."""
    from app.outputs.jobs import enqueue_regenerate

    enqueue_regenerate(output, keep_edits=keep_edits, actor=_email(actor))
    db.session.commit()
    return True


def write_outputs(case_id: int, actor: str | None = None) -> list[ResolutionOutput]:
    """Write the three outputs of case ``case_id`` as drafts (the job's body); commits.

    Each kind is upserted (one row per case and kind) with the writer's text, status
    ``draft``, ``edited`` False, and gets an ``output.generated`` event. ``actor`` is the
    email of whoever resolved. A missing case writes nothing (it was deleted meanwhile).
    """
    case = db.session.get(Case, case_id)
    if case is None:
        log.info("outputs.case_gone", case_id=case_id)
        return []
    written = _write(case, KINDS)
    return _store(case, written, actor=actor, keep_edits=False, regenerated=False)


def regenerate(output: ResolutionOutput, keep_edits: bool = False, actor: str | None = None):
    """Write ``output`` again, as a draft; commits. Returns the output.

    ``keep_edits`` and an edited output: the content people edited stays (the writer's new
    text is kept in ``generated_content`` beside it); otherwise the new text replaces it.
    """
    case = output.case
    written = _write(case, (output.kind,))
    return _store(case, written, actor=actor, keep_edits=keep_edits, regenerated=True)[0]


def edit_output(output: ResolutionOutput, content: str, actor: Any = None) -> bool:
    """Replace the output's Markdown with ``content``; it becomes an edited draft (an
    approval or rejection is undone). Writes ``output.edited``; the caller commits.

    Returns False (and changes nothing) when the content is the same. Raises
    ``OutputInputError`` for empty or over-long content.
    """
    content = _clean_text(content)
    if not content:
        raise OutputInputError("the content cannot be empty; reject the output instead")
    if len(content) > CONTENT_LIMIT:
        raise OutputInputError(f"the content is over {CONTENT_LIMIT} characters")
    if content == _clean_text(output.content):
        return False
    previous = output.status
    output.content, output.edited = content, True
    _back_to_draft(output)
    record_event(
        output.case,
        "output.edited",
        actor=_email(actor),
        payload={
            "output_id": output.id,
            "kind": output.kind,
            "from": previous,
            "summary": f"{output.label} edited",
        },
    )
    return True


def set_status(output: ResolutionOutput, status: str, actor: Any = None) -> None:
    """Approve or reject a draft (``status`` "approved" | "rejected"); writes
    ``output.approved`` / ``output.rejected``; the caller commits.

    Raises ``OutputInputError`` for another status and ``OutputConflict`` when the output is
    not a draft (edit or regenerate it to make a new draft first).
    """
    if status not in DECISIONS:
        raise OutputInputError(
            f"status must be approved or rejected, not {status!r} (editing or regenerating "
            "makes it a draft again)"
        )
    if output.status != "draft":
        raise OutputConflict(
            f"the {output.label.lower()} {'are' if output.kind == 'ticket_notes' else 'is'} "
            f"already {output.status}; edit or regenerate to make a new draft first"
        )
    now = clock.now()
    output.status, output.updated_at = status, now
    if status == "approved":
        output.approved_by_id = getattr(actor, "id", None)
        output.approved_at = now
    record_event(
        output.case,
        f"output.{status}",
        actor=_email(actor),
        payload={
            "output_id": output.id,
            "kind": output.kind,
            "summary": f"{output.label} {status}",
        },
    )


#: Characters of the document carried by ``output.pushed`` (and so by the outbound message).
PUSHED_CONTENT_LIMIT = 100_000


def push_targets(case: Case) -> list[tuple[str, str]]:
    """Where the case's approved outputs can go: ``[(target, label)]`` with ``source`` (a
    comment in the source's thread) when the case can be replied to, and each enabled
    subscription as ``subscription:<id>``."""
    from app.outbound.models import Subscription
    from app.replies.routes import ReplyRefused, check_reply

    targets = []
    try:
        check_reply(case, "-")
        targets.append(("source", f"Comment on the {case.provider} source"))
    except ReplyRefused:
        pass
    for subscription in db.session.scalars(
        db.select(Subscription).where(Subscription.enabled.is_(True)).order_by(Subscription.url)
    ):
        label = subscription.description or subscription.url
        targets.append((f"subscription:{subscription.id}", f"Subscription: {label}"))
    return targets


def push_output(output: ResolutionOutput, target: Any, actor: Any = None) -> str:
    """Send an approved (or already pushed) output on: ``target`` ``source`` posts it as a
    comment in the source's thread (a ``replies.post`` task), ``subscription:<id>`` sends
    the ``output.pushed`` case event, document included, to that subscription (an
    ``outbound.send`` task). Marks it ``pushed`` with where and when and writes
    ``output.pushed``; the caller commits. Returns a sentence for the page.

    ``OutputConflict`` unless approved or pushed; ``OutputInputError`` for an unknown
    target, or one that cannot take it (no source token, a disabled subscription).
    """
    from app.outbound import service as outbound
    from app.outbound.models import Subscription
    from app.replies.routes import ReplyRefused, check_reply
    from app.replies.tasks import request_reply

    if output.status not in ("approved", "pushed"):
        raise OutputConflict(f"only an approved output can be pushed; this one is {output.status}")
    target = str(target or "")
    case = output.case
    subscription = None
    if target == "source":
        try:
            endpoint, text = check_reply(case, output.content)
        except ReplyRefused as exc:
            raise OutputInputError(exc.detail) from None
    elif target.startswith("subscription:"):
        subscription = db.session.get(Subscription, target.partition(":")[2])
        if subscription is None or not subscription.enabled:
            raise OutputInputError(f"there is no enabled subscription {target.partition(':')[2]}")
    else:
        raise OutputInputError("push to 'source' or 'subscription:<id>'")
    now = clock.now()
    output.status, output.pushed_to, output.pushed_at, output.updated_at = (
        "pushed", target, now, now)  # fmt: skip
    event = record_event(
        case,
        "output.pushed",
        actor=_email(actor),
        payload={
            "output_id": output.id,
            "kind": output.kind,
            "target": target,
            "summary": f"{output.label} pushed to "
            + (
                "the source"
                if subscription is None
                else (subscription.description or "a subscription")
            ),
            "content": output.content[:PUSHED_CONTENT_LIMIT],
        },
    )
    if subscription is None:
        request_reply(endpoint, case.source, text, case=case, actor=_email(actor), origin="output")
        return f"{output.label} queued as a comment on the source."
    db.session.flush()
    if not outbound.wants(subscription, "output.pushed", case):
        # Its filter would not have sent it: send this one because someone asked for it.
        outbound.enqueue(subscription, "output.pushed", event_id=event.id)
    return f"{output.label} queued for the subscription."


def outputs_of(case: Case) -> list[ResolutionOutput]:
    """The case's outputs in tab order (ticket notes, KB article, client summary)."""
    outputs = db.session.scalars(
        db.select(ResolutionOutput).where(ResolutionOutput.case_id == case.id)
    ).all()
    return sorted(outputs, key=kind_order)


def get_output(case: Case, output_id: int) -> ResolutionOutput | None:
    """Output ``output_id`` if it belongs to ``case``."""
    output = db.session.get(ResolutionOutput, output_id)
    return output if output is not None and output.case_id == case.id else None


# ---------------------------------------------------------------------------------------------


def _write(case: Case, kinds: tuple[str, ...]) -> dict[str, Written]:
    """Ask the configured writer for ``kinds``. Reads the case, then ends the transaction
    before the writer works (an LLM may be slow; nothing is held meanwhile)."""
    case_id = case.id
    context = case_context(case)
    summary = case.resolution_summary or ""
    db.session.commit()
    writer = writing.get_writer()
    written: dict[str, Written] = {}
    for kind in kinds:
        document = writer.document(kind, context, summary)
        written[kind] = document
        log.info(
            "outputs.written",
            case_id=case_id,
            kind=kind,
            writer=document.writer,
            model=document.model,
            fallback_reason=document.fallback_reason,
        )
    return written


def _store(
    case: Case,
    written: dict[str, Written],
    *,
    actor: str | None,
    keep_edits: bool,
    regenerated: bool,
) -> list[ResolutionOutput]:
    """Upsert the written documents and their events, and commit (retrying once if another
    worker inserted the same row meanwhile)."""
    for attempt in (1, 2):
        try:
            stored = [
                _upsert(
                    case,
                    kind,
                    document,
                    actor=actor,
                    keep_edits=keep_edits,
                    regenerated=regenerated,
                )
                for kind, document in written.items()
            ]
            db.session.commit()
            return stored
        except IntegrityError:
            db.session.rollback()
            if attempt == 2:
                raise
            case = db.session.get(Case, case.id)
    raise AssertionError("unreachable")


def _upsert(
    case: Case,
    kind: str,
    document: Written,
    *,
    actor: str | None,
    keep_edits: bool,
    regenerated: bool,
) -> ResolutionOutput:
    output = db.session.scalars(
        db.select(ResolutionOutput).where(
            ResolutionOutput.case_id == case.id, ResolutionOutput.kind == kind
        )
    ).first()
    now = clock.now()
    if output is None:
        output = ResolutionOutput(case_id=case.id, kind=kind, edited=False, content="")
        db.session.add(output)
    kept = bool(keep_edits and output.edited)
    if not kept:
        output.content, output.edited = document.text, False
    output.generated_content = document.text
    output.data = document.data or {}
    output.writer, output.model = document.writer, document.model
    output.generated_at = now
    _back_to_draft(output, now)
    db.session.flush()  # the id, for the event
    by = "the built-in writer" if document.writer == "builtin" else f"the LLM ({document.model})"
    payload = {
        "output_id": output.id,
        "kind": kind,
        "writer": document.writer,
        "model": document.model,
        "regenerated": regenerated,
        "kept_edits": kept,
        "summary": f"{KIND_LABELS[kind]} {'rewritten' if regenerated else 'written'} by {by}"
        + (" (your edits kept)" if kept else ""),
    }
    if document.fallback_reason:
        payload["fallback_reason"] = document.fallback_reason
    record_event(case, "output.generated", actor=actor, payload=payload)
    return output


def _back_to_draft(output: ResolutionOutput, now: Any = None) -> None:
    output.status = "draft"
    output.approved_by_id = output.approved_at = None
    output.approved_by = None
    output.updated_at = now or clock.now()


def _clean_text(value: Any) -> str:
    """Text from a form or JSON: a string, Windows line ends made Unix, outer blanks gone."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise OutputInputError("expected text")
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def _email(actor: Any) -> str | None:
    return getattr(actor, "email", None) or (actor if isinstance(actor, str) else None)
