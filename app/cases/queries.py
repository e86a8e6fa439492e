"""Reading cases for the table and the JSON API: one set of filters for both."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from sqlalchemy import func

from app.cases.models import CASE_STATUSES, Case
from app.extensions import db

SORTS = {
    "updated": Case.updated_at.desc(),
    "oldest": Case.updated_at.asc(),
    "created": Case.created_at.desc(),
}


@dataclass(frozen=True)
class CaseFilters:
    """Filters from the query string: ``status``, ``provider``, ``q`` (title), ``sort``, ``page``.

    Unknown values are dropped rather than refused, so a hand-edited URL still shows a table.
    """

    status: str = ""
    provider: str = ""
    q: str = ""
    sort: str = "updated"
    page: int = 1

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> CaseFilters:
        status = args.get("status", "")
        sort = args.get("sort", "updated")
        try:
            page = max(1, int(args.get("page", 1)))
        except ValueError:
            page = 1
        return cls(
            status=status if status in CASE_STATUSES else "",
            provider=args.get("provider", "").strip()[:32],
            q=args.get("q", "").strip()[:200],
            sort=sort if sort in SORTS else "updated",
            page=page,
        )

    def as_query(self, **changes: object) -> dict:
        """These filters as URL query arguments, without defaults, with ``changes`` applied."""
        values = {**asdict(self), **changes}
        defaults = asdict(CaseFilters())
        return {k: v for k, v in values.items() if v != defaults[k]}


def _filtered(filters: CaseFilters, *, with_status: bool = True):
    query = db.select(Case)
    if with_status and filters.status:
        query = query.where(Case.status == filters.status)
    if filters.provider:
        query = query.where(Case.provider == filters.provider)
    if filters.q:
        escaped = filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Case.title.ilike(f"%{escaped}%", escape="\\"))
    return query


def search_cases(filters: CaseFilters, per_page: int) -> tuple[list[Case], int]:
    """One page of cases matching ``filters`` and the total that match."""
    query = _filtered(filters)
    total = db.session.scalar(db.select(func.count()).select_from(query.subquery()))
    cases = db.session.scalars(
        query.order_by(SORTS[filters.sort], Case.id.desc())
        .limit(per_page)
        .offset((filters.page - 1) * per_page)
    ).all()
    return list(cases), total or 0


def status_counts(filters: CaseFilters) -> dict[str, int]:
    """Cases per status under the other filters (the tabs above the table)."""
    query = _filtered(filters, with_status=False).subquery()
    rows = db.session.execute(
        db.select(query.c.status, func.count()).group_by(query.c.status)
    ).all()
    counts = dict.fromkeys(CASE_STATUSES, 0)
    counts.update({status: count for status, count in rows})
    return counts


def providers_in_use() -> list[str]:
    return list(db.session.scalars(db.select(Case.provider).distinct().order_by(Case.provider)))


def table_version() -> str:
    """Changes whenever any case is added or updated: the poll's cheap "anything new?" check."""
    count, latest = db.session.execute(
        db.select(func.count(Case.id), func.max(Case.updated_at))
    ).one()
    return f"{count}-{latest.timestamp() if latest else 0}"
