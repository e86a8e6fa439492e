"""Reading cases for the table and the JSON API: one set of filters for both."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import case as when
from sqlalchemy import func, or_, union_all
from sqlalchemy.orm import selectinload

from app import clock
from app.cases.models import CASE_STATUSES, LIVE_STATUSES, SEVERITIES, Case
from app.extensions import db
from app.inputs import page_number

#: "urgency" (the default): live cases nobody has acknowledged first, then the other live
#: ones, then the rest; within each, critical → info, then the longest waiting first.
_URGENCY = (
    when(
        (Case.status.in_(LIVE_STATUSES) & Case.acknowledged_at.is_(None), 0),
        (Case.status.in_(LIVE_STATUSES), 1),
        else_=2,
    ),
    when(
        {s: rank for rank, s in enumerate(SEVERITIES)}, value=Case.severity, else_=len(SEVERITIES)
    ),
    Case.created_at.asc(),
)
SORTS = {
    "urgency": _URGENCY,
    "updated": (Case.updated_at.desc(),),
    "oldest": (Case.updated_at.asc(),),
    "created": (Case.created_at.desc(),),
}
#: Rows per page a user may choose (``size``); the default is ``CASES_PER_PAGE``.
PAGE_SIZES = (25, 50, 100)
#: ``ack=yes``: acknowledged; ``ack=no``: not (yet).
ACK_CHOICES = ("yes", "no")
#: ``assignee=none``: cases nobody is assigned to.
UNASSIGNED = "none"


@dataclass(frozen=True)
class CaseFilters:
    """Filters from the query string: ``status``, ``provider``, ``endpoint`` (id),
    ``assignee`` (an email, or ``none`` for unassigned), ``severity``, ``mine`` (``1``: cases
    assigned to the signed-in user), ``q`` (title contains), ``ack`` (``yes``/``no``),
    ``sort`` (``SORTS``; default urgency), ``page``, ``size`` (``PAGE_SIZES``; 0 = default).

    Unknown values are dropped rather than refused, so a hand-edited URL still shows a table;
    only a ``page`` that is not a whole number from 1 to ``MAX_PAGE`` raises ``InputError``.
    ``me`` (the signed-in user's id, for ``mine``) is not part of the URL.
    """

    status: str = ""
    provider: str = ""
    endpoint: str = ""
    assignee: str = ""
    severity: str = ""
    mine: bool = False
    q: str = ""
    ack: str = ""
    sort: str = "urgency"
    page: int = 1
    size: int = 0
    me: int | None = field(default=None, compare=False)

    @classmethod
    def from_args(cls, args: Mapping[str, str], *, me: int | None = None) -> CaseFilters:
        status = args.get("status", "")
        severity = args.get("severity", "")
        sort = args.get("sort", "urgency")
        ack = args.get("ack", "")
        size = args.get("size", "")
        page = page_number(args)
        return cls(
            status=status if status in CASE_STATUSES else "",
            provider=args.get("provider", "").strip()[:32],
            endpoint=args.get("endpoint", "").strip()[:26],
            assignee=args.get("assignee", "").strip().lower()[:320],
            severity=severity if severity in SEVERITIES else "",
            mine=args.get("mine", "") in ("1", "true", "on", "yes"),
            q=args.get("q", "").strip()[:200],
            ack=ack if ack in ACK_CHOICES else "",
            sort=sort if sort in SORTS else "urgency",
            page=page,
            size=int(size) if size in {str(n) for n in PAGE_SIZES} else 0,
            me=me,
        )

    @property
    def narrowed(self) -> bool:
        """True when any filter (not sort or page) is set: an empty table means "no match"."""
        return any((self.status, self.provider, self.endpoint, self.assignee, self.severity,
                    self.mine, self.q, self.ack))  # fmt: skip

    def as_query(self, **changes: object) -> dict:
        """These filters as URL query arguments, without defaults, with ``changes`` applied."""
        values = {**asdict(self), **changes}
        values.pop("me", None)
        defaults = asdict(CaseFilters())
        query = {k: v for k, v in values.items() if v != defaults[k]}
        if query.get("mine"):
            query["mine"] = "1"
        return query

    def url(self, **changes: object) -> str:
        """The case table's URL for these filters with ``changes`` (``url_for`` cannot take
        the ``endpoint`` argument, which it reserves for itself)."""
        from urllib.parse import urlencode

        from flask import url_for

        query = self.as_query(**changes)
        return url_for("cases.index") + (f"?{urlencode(query)}" if query else "")


def _filtered(filters: CaseFilters, *, with_status: bool = True):
    from app.accounts.models import User

    query = db.select(Case)
    if with_status and filters.status:
        query = query.where(Case.status == filters.status)
    if filters.provider:
        query = query.where(Case.provider == filters.provider)
    if filters.endpoint:
        query = query.where(Case.endpoint_id == filters.endpoint)
    if filters.severity:
        query = query.where(Case.severity == filters.severity)
    if filters.assignee == UNASSIGNED:
        query = query.where(Case.assignee_id.is_(None))
    elif filters.assignee:
        user_id = db.select(User.id).where(User.email == filters.assignee).scalar_subquery()
        query = query.where(Case.assignee_id == user_id)
    if filters.mine:
        # Nobody signed in (the CLI): "mine" matches nothing rather than everything.
        query = query.where(Case.assignee_id == (filters.me if filters.me is not None else -1))
    if filters.ack:
        acknowledged = Case.acknowledged_at.is_not(None)
        query = query.where(acknowledged if filters.ack == "yes" else ~acknowledged)
    if filters.q:
        escaped = filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Case.title.ilike(f"%{escaped}%", escape="\\"))
    return query


def _page(filters: CaseFilters, per_page: int, offset: int | None = None) -> list[Case]:
    # Assignees in one more query, not one per row (the table and the API show them).
    per_page = filters.size or per_page
    if offset is None:
        offset = (filters.page - 1) * per_page
    return list(
        db.session.scalars(
            _filtered(filters)
            .options(selectinload(Case.assignee))
            .order_by(*SORTS[filters.sort], Case.id.desc())
            .limit(per_page)
            .offset(offset)
        ).all()
    )


def search_cases(
    filters: CaseFilters, per_page: int, offset: int | None = None
) -> tuple[list[Case], int]:
    """One page of cases matching ``filters`` and the total that match; ``per_page`` is the
    default page size (``filters.size`` wins when set); ``offset`` (rows to skip) replaces
    ``filters.page`` when given (the API's ``after`` cursor)."""
    total = db.session.scalar(db.select(func.count()).select_from(_filtered(filters).subquery()))
    return _page(filters, per_page, offset), total or 0


def table_page(filters: CaseFilters, per_page: int) -> tuple[list[Case], int, dict[str, int]]:
    """``(page of cases, total, cases per status)`` for the case table.

    The counts per status (the tabs) already hold the total, so the filters (a title search
    is a scan) are applied twice, not three times: once grouped, once for the page, which
    stops after ``per_page`` rows in sort order.
    """
    counts = status_counts(filters)
    total = counts[filters.status] if filters.status else sum(counts.values())
    return (_page(filters, per_page) if total else []), total, counts


def status_counts(filters: CaseFilters) -> dict[str, int]:
    """Cases per status under the other filters (the tabs above the table)."""
    query = _filtered(filters, with_status=False).subquery()
    rows = db.session.execute(
        db.select(query.c.status, func.count()).group_by(query.c.status)
    ).all()
    counts = dict.fromkeys(CASE_STATUSES, 0)
    counts.update({status: count for status, count in rows})
    return counts


def case_summary(filters: CaseFilters | None = None, now: datetime | None = None) -> dict:
    """Counts for dashboards (``GET /api/cases/summary``), under ``filters`` if given::

        {"by_status": {status: n, ...every status},
         "by_provider": {provider: n, ...providers with cases},
         "by_severity": {severity: n, ...every severity},
         "oldest_open_age_seconds": int | None,   # oldest live (open/escalated/parked) case
         "total": int}

    The age is counted from the case's ``created_at`` to ``now`` (default ``clock.now()``).
    """
    from app.templating import as_utc

    filtered = _filtered(filters or CaseFilters())
    query = filtered.subquery()

    def grouped(column) -> dict:
        # Each a scan of one narrow index (status, severity, provider) when unfiltered.
        rows = db.session.execute(db.select(column, func.count()).group_by(column)).all()
        return {key: count for key, count in rows}

    by_status = dict.fromkeys(CASE_STATUSES, 0) | grouped(query.c.status)
    by_severity = dict.fromkeys(SEVERITIES, 0) | grouped(query.c.severity)
    by_provider = dict(sorted(grouped(query.c.provider).items()))
    # The oldest live case: the least of each live status's oldest, each one look-up at the
    # start of ``ix_cases_status_created`` (a min over an IN list would read every live case).
    firsts = union_all(
        *(
            filtered.with_only_columns(func.min(Case.created_at).label("first")).where(
                Case.status == status
            )
            for status in LIVE_STATUSES
        )
    ).subquery()
    oldest = db.session.scalar(db.select(func.min(firsts.c.first)))
    age = None
    if oldest is not None:
        age = max(0, int(((now or clock.now()) - as_utc(oldest)).total_seconds()))
    return {
        "by_status": by_status,
        "by_provider": by_provider,
        "by_severity": by_severity,
        "oldest_open_age_seconds": age,
        "total": sum(by_status.values()),
    }


def deliveries_of(case: Case):
    """A select of the deliveries behind ``case``: those it was opened or last updated by
    (``Delivery.case_id``) and any other that wrote one of its events. One Alertmanager
    delivery carries several alerts, each its own case, and names only one of them."""
    from app.events.models import CaseEvent
    from app.webhooks.models import Delivery

    via_events = db.select(CaseEvent.delivery_pk).where(
        CaseEvent.case_id == case.id, CaseEvent.delivery_pk.is_not(None)
    )
    return db.select(Delivery).where(or_(Delivery.case_id == case.id, Delivery.id.in_(via_events)))


def providers_in_use() -> list[str]:
    return list(db.session.scalars(db.select(Case.provider).distinct().order_by(Case.provider)))


def endpoint_choices() -> list[tuple[str, str]]:
    """``[(endpoint id, "name (provider)")]`` for the endpoint filter."""
    from app.webhooks.models import Endpoint

    rows = db.session.execute(
        db.select(Endpoint.id, Endpoint.name, Endpoint.provider).order_by(Endpoint.name)
    ).all()
    return [(row.id, f"{row.name} ({row.provider})") for row in rows]


def assignable_users() -> list:
    """Active engineers and admins, by email: who a case can be assigned to."""
    from app.accounts.models import User

    users = db.session.scalars(
        db.select(User)
        .where(User.active.is_(True), User.role.in_(("engineer", "admin")))
        .order_by(User.email)
    ).all()
    return list(users)


def assignee_choices() -> list[str]:
    """Emails for the assignee filter: whoever can be assigned plus whoever is assigned."""
    from app.accounts.models import User

    # One probe of ix_cases_assignee_id per user, rather than a join over every case.
    assigned = db.session.scalars(
        db.select(User.email).where(db.select(Case.id).where(Case.assignee_id == User.id).exists())
    ).all()
    return sorted({u.email for u in assignable_users()} | set(assigned))


def table_version() -> str:
    """Changes whenever a case is added or updated: the poll's cheap "anything new?" check.

    The highest id (a new case) and the latest ``updated_at`` (every change to a case sets
    it): two lookups at the end of an index, whatever the number of cases. Cases are never
    deleted (an endpoint's deletion keeps them), so nothing else changes the table.
    """
    latest_id = db.session.scalar(db.select(func.max(Case.id)))
    latest = db.session.scalar(db.select(func.max(Case.updated_at)))
    return f"{latest_id or 0}-{latest.timestamp() if latest else 0}"
