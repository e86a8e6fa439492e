"""The small interface every provider module implements (SPEC C1)."""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import math
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any, ClassVar

import httpx

from app import clock
from app.text import storable
from app.webhooks.commands import Command

#: The longest delivery id kept (from a header or derived from the body): the column's size.
MAX_DELIVERY_ID = 200
#: The longest event type kept (``Delivery.event_type``).
MAX_EVENT_TYPE = 200
#: The longest case title and dedup key kept (``Case.title``, ``Case.dedup_key``).
MAX_TITLE = MAX_DEDUP_KEY = 500
#: The longest timeline line kept in a case event (no column; the payload keeps the rest).
MAX_SUMMARY = 1000
#: Seconds a sender's timestamp may be away from now, either way (Slack, Sentry and Standard
#: Webhooks all say five minutes).
TOLERANCE_SECONDS = 300
#: Sample requests ship inside the package (package data), one folder per provider, so that
#: ``flask demo`` and "Send a test delivery" work from a bare clone or an installed wheel.
SAMPLES_FOLDER = "samples"
#: Sample order for a demo: what opens a case before what updates it, closings last.
_SAMPLE_ORDER = {"opened": 0, "open": 0, "triggered": 0, "firing": 0, "created": 1}
_SAMPLE_ORDER |= {"reopened": 3, "closed": 4, "resolved": 4}


class VerificationError(Exception):
    """A request failed a provider check; ``check`` names it, ``detail`` says it for people.

    ``check`` is one of ``missing_header``, ``bad_signature``, ``stale_timestamp``,
    ``bad_token``; the route answers 401 with both.
    """

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(detail)
        self.check = check
        self.detail = detail


class PayloadError(Exception):
    """The request was authentic but cannot be processed (not JSON, no delivery id): 400."""


@dataclass(frozen=True)
class CaseFacts:
    """What a delivery says about the case it belongs to.

    Built from provider data, so every field is made storable on construction (also by
    ``dataclasses.replace``): NULs and lone surrogates cleaned, title cut to ``MAX_TITLE``,
    dedup key to ``MAX_DEDUP_KEY`` (keeping long keys distinct), summary to ``MAX_SUMMARY``
    (see ``app.text.storable``). The delivery's stored body keeps the full text.
    """

    dedup_key: str | None
    title: str
    severity: str = "info"
    source_url: str | None = None
    #: One line for the timeline: what this delivery says happened.
    summary: str = ""
    #: Where replies go (``case_source`` of the provider's ``reply_target``), kept on the
    #: case; None when the delivery has nothing to reply to.
    source: dict | None = None

    def __post_init__(self) -> None:
        cleaned = {
            "dedup_key": _storable_or_none(self.dedup_key, MAX_DEDUP_KEY, distinct=True),
            "title": storable(str(self.title or ""), MAX_TITLE),
            "severity": storable(str(self.severity or "info"), 20),
            "source_url": _storable_or_none(self.source_url, None),
            "summary": storable(str(self.summary or ""), MAX_SUMMARY),
        }
        for name, value in cleaned.items():
            object.__setattr__(self, name, value)


def _storable_or_none(value: Any, limit: int | None, *, distinct: bool = False) -> str | None:
    # Nothing left once cleaned (a key that was only NULs) is no value: an empty dedup key
    # would be one key that every such delivery shares, and find_case treats it as none.
    return (storable(str(value), limit, distinct=distinct) or None) if value is not None else None


@dataclass(frozen=True)
class IncidentField:
    """One labelled fact of an incident ("Service": "API Service"), with a link when the
    source gives one (only http and https URLs are kept: ``http_url``)."""

    label: str
    value: str
    url: str | None = None


@dataclass(frozen=True)
class Incident:
    """What happened, in the source's own words, for the top of the case page.

    ``body_markdown`` is the source's text (an issue body, an alert description, a message),
    rendered as Markdown by ``app.markdown`` (never trusted HTML); ``fields`` are its labelled
    facts in the order the provider thinks matter; ``level`` is the source's own word for how
    bad it is (Sentry ``error``, PagerDuty ``high``), shown beside the case's severity.
    """

    body_markdown: str = ""
    fields: tuple[IncidentField, ...] = ()
    level: str = ""

    def __bool__(self) -> bool:
        return bool(self.body_markdown or self.fields or self.level)


def incident_fields(*pairs: tuple[str, Any] | tuple[str, Any, Any]) -> tuple[IncidentField, ...]:
    """``IncidentField``s from ``(label, value[, url])``; empty values are left out, values
    are one line (``one_line``), urls kept only when http(s)."""
    fields = []
    for label, value, *url in pairs:
        text = one_line(value)
        if text:
            fields.append(IncidentField(label, text, http_url(url[0]) if url else None))
    return tuple(fields)


@dataclass(frozen=True)
class Sample:
    """A request as the provider sends it, shipped in ``samples/<provider>/``.

    ``name`` is the file stem (``issues.opened``); ``headers`` are the ones that say what the
    request is (from ``<name>.headers``: event type, content type, user agent), without the
    signature, timestamp or delivery id, which ``Provider.sample_request`` makes fresh;
    ``body`` is ``<name>.json``, byte for byte.
    """

    name: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class ReplySettings:
    """How an endpoint replies to its source: the provider's API base URL (no trailing
    slash), the clear token, and the provider's own reply ``options`` (e.g. PagerDuty's
    ``from`` email, Jira's ``api_version``)."""

    api_url: str
    token: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class ReplyResult:
    """A posted reply: the HTTP status, a link to the comment when the API gives one (or
    can be built from its answer), and an excerpt of the answer (≤ 1 KiB)."""

    status_code: int
    url: str | None
    excerpt: str


class ReplyError(Exception):
    """A reply that did not go through. ``status_code`` is the HTTP status (None: no
    answer, e.g. a timeout), ``retry_after`` the seconds the provider asked us to wait
    (rate limits), ``permanent`` when trying again cannot help (bad token, unknown issue)."""

    def __init__(
        self,
        detail: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(detail)
        self.detail, self.status_code = detail, status_code
        self.retry_after, self.permanent = retry_after, permanent


@dataclass(frozen=True)
class Mention:
    """A comment-like event's text and who wrote it, as the provider says (``Provider.mention``).

    ``trusted``: the provider says the author belongs to the project (GitHub
    ``author_association`` OWNER/MEMBER/COLLABORATOR, GitLab access level ≥ Developer);
    ``is_bot``: a bot or an app wrote it (never triggers anything). ``addressed``: for
    providers where the event itself addresses Casehook (Slack ``app_mention``), the text
    after the address, where the command word comes first; None: look for the prefix.
    """

    text: str
    author: str
    trusted: bool = False
    is_bot: bool = False
    addressed: str | None = None


#: Key of a reply target naming the item that triggered a command (e.g. the GitHub comment
#: to react to); a case keeps its target without it (``case_source``).
TRIGGER = "trigger"
#: Bytes of a provider's answer kept on the attempt.
EXCERPT_BYTES = 1024
#: Seconds a reply request may take.
REPLY_TIMEOUT = 15.0


class Provider:
    """Per-provider knowledge: verify, delivery id, event type, case facts, built-in commands,
    how it signs a request, the sample requests it ships, what the console says about it, and
    how to reply to the source.

    Subclasses set ``name`` and implement the methods; one module per provider, its samples in
    ``samples/<name>/``.
    """

    name: ClassVar[str]
    #: How people call it ("GitHub"), in the console and written documents.
    display_name: ClassVar[str] = ""
    #: What the secret is on the provider's side (console hints), e.g. "the webhook's Secret".
    secret_hint: ClassVar[str] = "the secret"
    #: Set when the provider makes the secret itself: what to paste from where. The one
    #: Casehook generates is then a placeholder until the provider's is pasted.
    secret_from_provider: ClassVar[str | None] = None
    #: Provider options an endpoint may set, with their allowed values (None: any JSON
    #: value); the first value is the default.
    known_settings: ClassVar[dict[str, tuple | None]] = {}
    #: A short sentence per option (console help).
    setting_help: ClassVar[dict[str, str]] = {}
    #: Whether its deliveries are alerts from monitoring rather than reports by people.
    monitoring: ClassVar[bool] = False
    #: The event type of the provider's connection test, answered ``{"detail": "pong"}``.
    ping_event: ClassVar[str | None] = None
    #: The public API replies go to unless the endpoint says otherwise (None: no public
    #: API, the endpoint must say, or the target carries it).
    default_api_url: ClassVar[str | None] = None
    #: Reply options an endpoint may set in ``settings.reply`` besides ``api_url`` and the
    #: token, with a sentence each (console help).
    reply_options: ClassVar[dict[str, str]] = {}
    #: The allowed values of reply options that have a fixed set.
    reply_option_choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Appended to every reply Casehook posts where it stays invisible (an HTML comment in
    #: Markdown), so that a reply quoting a mention never triggers one (no loops); "" when
    #: the provider shows it (then its bot flag is what stops loops).
    reply_marker: ClassVar[str] = ""

    def check_secret(self, secret: str) -> str | None:
        """Why ``secret`` (given by a person, stripped) cannot work for this provider (a
        sentence), or None when it can."""
        return None

    def generate_secret(self) -> str:
        """A fresh random secret in the form the provider expects (32 random bytes,
        URL-safe)."""
        return secrets.token_urlsafe(32)

    def reply_target(self, event_type: str, payload: Any) -> dict | None:
        """What a reply to this delivery's source needs (JSON: repository and number,
        channel and thread, ...), with ``TRIGGER`` naming the triggering item when there is
        one; None when this delivery has nothing to reply to. Stored on the case it opens."""
        return None

    def reply(self, target: Mapping[str, Any], text: str, settings: ReplySettings) -> ReplyResult:
        """Post ``text`` (Markdown) to ``target`` through the provider's REST API; raise
        ``ReplyError`` when it does not go through."""
        raise ReplyError(f"{self.display_name or self.name} cannot be replied to", permanent=True)

    def mention(self, event_type: str, payload: Any) -> Mention | None:
        """The comment text and its author when this event is a comment people write in
        (issue comment, note, chat mention), for commands addressed to Casehook
        (``app.webhooks.mentions``); None for every other event. Default: None."""
        return None

    def acknowledge(self, target: Mapping[str, Any], settings: ReplySettings) -> ReplyResult | None:
        """Put a reaction (👀) on the item that triggered a mention (``target[TRIGGER]``);
        None when the provider has no reactions or the target names no item, so a short
        text is posted instead. ``ReplyError`` as ``reply``."""
        return None

    def verify(self, secret: str, headers: Mapping[str, str], body: bytes) -> None:
        """Raise ``VerificationError`` unless ``body`` was sent by someone holding ``secret``."""
        raise NotImplementedError

    def sign_request(self, secret: str, body: bytes, delivery: str, now: int) -> dict[str, str]:
        """The headers that authenticate and identify ``body`` as the provider sends them
        (signature, timestamp, delivery id), for a request sent at Unix time ``now`` with the
        fresh id ``delivery`` (a UUID; providers whose ids live in the body ignore it)."""
        raise NotImplementedError

    def samples(self) -> list[Sample]:
        """The sample requests shipped for this provider, in demo order (openings first,
        closings last, then by name); [] when it ships none."""
        folder = resources.files(__package__).joinpath(SAMPLES_FOLDER, self.name)
        if not folder.is_dir():
            return []
        found = []
        for entry in folder.iterdir():
            if entry.name.endswith(".json") and entry.is_file():
                name = entry.name.removesuffix(".json")
                meta = folder.joinpath(f"{name}.headers")
                headers = header_lines(meta.read_text("utf-8")) if meta.is_file() else {}
                found.append(Sample(name, headers, entry.read_bytes()))
        return sorted(found, key=_sample_order)

    def sample(self, name: str) -> Sample | None:
        """The shipped sample called ``name``, or None (so no name can reach another file)."""
        return next((s for s in self.samples() if s.name == name), None)

    def sample_request(self, secret: str, sample: Sample) -> dict[str, str]:
        """Every header the provider would send with ``sample``: its own headers plus a fresh
        delivery id and the signature under ``secret``, stamped ``app.clock.now()``."""
        now = int(clock.now().timestamp())
        return {**sample.headers, **self.sign_request(secret, sample.body, str(uuid.uuid4()), now)}

    def delivery_id(self, headers: Mapping[str, str], payload: Any) -> str:
        """The provider's delivery id, stable across its retries; ``PayloadError`` if absent.
        Ingest stores it through ``stored_delivery_id``."""
        raise NotImplementedError

    def event_type(self, headers: Mapping[str, str], payload: Any) -> str:
        """The normalised ``resource.action`` event type. Ingest stores it through
        ``stored_event_type``."""
        raise NotImplementedError

    def stored_delivery_id(self, headers: Mapping[str, str], payload: Any) -> str:
        """``delivery_id`` made storable: at most ``MAX_DELIVERY_ID`` characters, a long one
        kept distinct from others sharing its start (``app.text.storable``)."""
        return storable(self.delivery_id(headers, payload), MAX_DELIVERY_ID, distinct=True)

    def stored_event_type(self, headers: Mapping[str, str], payload: Any) -> str:
        """``event_type`` made storable: at most ``MAX_EVENT_TYPE`` characters."""
        return storable(self.event_type(headers, payload), MAX_EVENT_TYPE)

    def immediate_answer(self, event_type: str, payload: dict) -> dict | None:
        """The 200 body for a delivery that only tests the connection (GitHub ``ping``, Slack
        ``url_verification``), answered after verification, stored, never processed; else
        None. Default: ``{"detail": "pong"}`` for the ``ping_event``."""
        return {"detail": "pong"} if event_type == self.ping_event else None

    def split(
        self, event_type: str, payload: dict, settings: Mapping[str, Any]
    ) -> list[tuple[str, dict]]:
        """The ``(event type, payload)`` pairs commands run on; one per alert for providers
        that batch several (Alertmanager). ``settings`` are the endpoint's. Default: the
        delivery itself."""
        return [(event_type, payload)]

    def case_facts(self, event_type: str, payload: Any) -> CaseFacts:
        """Dedup key, title, severity and source URL for the case this delivery is about."""
        raise NotImplementedError

    def incident(self, event_type: str, payload: Any) -> Incident:
        """What the case page shows of this delivery's source (``Incident``): its own text
        and the facts that say what happened. Default: nothing (the page shows the summary)."""
        return Incident()

    def ordering_key(self, event_type: str, payload: dict) -> str | None:
        """What this delivery must be processed in order with (deliveries with the same key
        run one after another, in arrival order; others may run in parallel). Default: the
        case's dedup key; None (the endpoint orders it) when there is none."""
        try:
            return self.case_facts(event_type, payload).dedup_key
        except Exception:  # hostile payloads fail later, in the worker, with a reason
            return None

    def builtin_commands(self) -> list[Command]:
        """Commands shipped in code for this provider."""
        return []


def case_source(target: Mapping[str, Any] | None) -> dict | None:
    """A reply target as a case keeps it: without the ``TRIGGER`` (that belongs to one
    delivery); None when there is nothing to reply to."""
    if not target:
        return None
    return {k: v for k, v in target.items() if k != TRIGGER}


def send(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    json: Any = None,
    ok: tuple[int, ...] = (200, 201),
) -> httpx.Response:
    """One request of a reply, with ``REPLY_TIMEOUT`` and no redirects followed.

    Returns the response when its status is in ``ok``; else ``ReplyError`` with the status,
    the rate-limit wait (``rate_limit_wait``) and ``permanent`` for 4xx other than 408, 409,
    425 and 429 (a bad token or a missing issue stays so)."""
    try:
        response = httpx.request(
            method, url, headers=dict(headers), json=json, timeout=REPLY_TIMEOUT,
            follow_redirects=False,
        )  # fmt: skip
    except httpx.HTTPError as exc:
        raise ReplyError(f"{method} {url}: {exc.__class__.__name__}: {exc}") from None
    if response.status_code in ok:
        return response
    wait = rate_limit_wait(response)
    status = response.status_code
    permanent = 400 <= status < 500 and status not in (408, 409, 425, 429) and wait is None
    raise ReplyError(
        f"{method} {url} answered {status}: {answer_excerpt(response)}",
        status_code=status,
        retry_after=wait,
        permanent=permanent,
    )


def rate_limit_wait(response: httpx.Response) -> float | None:
    """Seconds a rate-limited answer asks us to wait, or None when it is no rate limit.

    403 and 429 count (GitHub answers either); ``Retry-After`` (seconds or an HTTP date)
    first, then GitHub's ``x-ratelimit-remaining: 0`` with ``x-ratelimit-reset`` (Unix time);
    a 429 that says neither waits a minute (GitHub's advice for secondary limits)."""
    if response.status_code not in (403, 429):
        return None
    retry_after = response.headers.get("retry-after", "").strip()
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(retry_after)
            except (TypeError, ValueError):
                when = None
            if when is not None and when.tzinfo is not None:
                return max(0.0, (when - clock.now()).total_seconds())
    if response.headers.get("x-ratelimit-remaining") == "0":
        try:
            reset = float(response.headers.get("x-ratelimit-reset", ""))
        except ValueError:
            reset = None
        if reset is not None:
            return max(1.0, reset - clock.now().timestamp())
    return 60.0 if response.status_code == 429 else None


def answer_excerpt(response: httpx.Response) -> str:
    """The first ``EXCERPT_BYTES`` of an answer's body, as text."""
    return response.content[:EXCERPT_BYTES].decode("utf-8", "replace")


def answer_json(response: httpx.Response) -> dict:
    """The answer's JSON object, or {} when it is none."""
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _sample_order(sample: Sample) -> tuple[int, str]:
    # The last word of the name says what it does: issues.opened, jira.issue_created, firing.
    return _SAMPLE_ORDER.get(re.split(r"[._]", sample.name)[-1], 2), sample.name


def header_lines(text: str) -> dict[str, str]:
    """Headers from ``Name: value`` lines (as ``curl -D`` or a raw HTTP request writes them);
    a leading request or status line, blank lines and ``#`` comments are skipped."""
    headers = {}
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        name = name.strip()
        if colon and name and " " not in name and not name.startswith("#"):
            headers[name] = value.strip()
    return headers


def hmac_sha256_hex(secret: str | bytes, message: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of ``message`` under ``secret``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    """Compare two strings without leaking where they differ (timing-safe)."""
    return hmac.compare_digest(a.encode(), b.encode())


def text_of(value: Any, default: str = "") -> str:
    """``value`` as a stripped string; None, empty and non-strings fall back to ``default``."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return default


def mapping(value: Any) -> dict:
    """``value`` if it is a JSON object, else ``{}`` (payload fields may be null)."""
    return value if isinstance(value, dict) else {}


def array(value: Any) -> list:
    """``value`` if it is a JSON array, else ``[]`` (a hostile sender may put anything)."""
    return value if isinstance(value, list) else []


def header(headers: Mapping[str, str], name: str) -> str:
    """Header ``name``, whatever its case (the route's headers already ignore case; a plain
    dict may not), stripped; "" when absent."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value.strip() if isinstance(value, str) else ""


def require_header(headers: Mapping[str, str], name: str, hint: str = "") -> str:
    """Header ``name`` (as ``header``); ``missing_header`` naming it, and ``hint`` on what to set
    up, when it is absent or blank."""
    value = header(headers, name)
    if not value:
        raise VerificationError(
            "missing_header", f"{name} header is missing" + (f"; {hint}" if hint else "")
        )
    return value


def check_signature(
    given: str,
    expected: str,
    header_name: str,
    *,
    signed: str = "the body",
    cause: str = "the secret differs",
) -> None:
    """``bad_signature`` unless ``given`` is ``expected`` (compared in constant time); the
    detail names ``header_name``, what was ``signed`` and the likely ``cause``."""
    if not constant_time_equal(given, expected):
        raise VerificationError(
            "bad_signature",
            f"{header_name} does not match {signed}: {cause}, or the body was changed on the way",
        )


def check_timestamp(
    raw: str,
    header_name: str,
    tolerance_seconds: int = TOLERANCE_SECONDS,
    *,
    fractional: bool = False,
) -> datetime:
    """The sender's Unix time ``raw`` (from ``header_name``) as a UTC datetime, if it is within
    ``tolerance_seconds`` of ``app.clock.now()`` either way (replay protection).

    ``missing_header`` when ``raw`` is blank; ``stale_timestamp`` when it is not a Unix time
    (whole seconds, unless ``fractional``) or too far off, with the skew in seconds.
    """
    if not raw:
        raise VerificationError("missing_header", f"{header_name} header is missing")
    try:
        sent = float(raw) if fractional else float(int(raw))
    except (ValueError, OverflowError):
        sent = math.nan
    if not math.isfinite(sent):
        unit = "seconds" if fractional else "whole seconds"
        raise VerificationError(
            "stale_timestamp", f"{header_name} {raw[:40]!r} is not a Unix time in {unit}"
        )
    skew = sent - clock.now().timestamp()
    if abs(skew) > tolerance_seconds:
        direction = "in the future" if skew > 0 else "old"
        raise VerificationError(
            "stale_timestamp",
            f"{header_name} is {abs(skew):.0f} s {direction} (skew {skew:+.0f} s; "
            f"allowed ±{tolerance_seconds} s): a replay, or a clock out of sync",
        )
    return datetime.fromtimestamp(sent, UTC)


def delivery_header(headers: Mapping[str, str], *names: str) -> str:
    """The first of the headers ``names`` that is set (stripped, storable in at most
    ``MAX_DELIVERY_ID`` characters); ``PayloadError`` naming them all when none is."""
    for name in names:
        value = header(headers, name)
        if value:
            return storable(value, MAX_DELIVERY_ID, distinct=True)
    plural = "headers are" if len(names) > 1 else "header is"
    raise PayloadError(f"{' and '.join(names)} {plural} missing")


def event_and_action(event: str, payload: Any) -> str:
    """``{event}.{action}`` with the body's ``action``; ``event`` alone when it has none."""
    action = text_of(mapping(payload).get("action"))
    return f"{event}.{action}" if action else event


def remark(who: str, verb: str, text: str, limit: int = 280) -> str:
    """A timeline line for a comment or a note: ``{who} {verb}: {text}`` with ``text`` cut after
    ``limit`` characters ("…" marks the cut), or ``{who} {verb}`` when there is no text."""
    if not text:
        return f"{who} {verb}"
    return f"{who} {verb}: {text[:limit]}" + ("…" if len(text) > limit else "")


def one_line(value: Any) -> str:
    """``value`` as text (``text_of``) with every run of white space, newlines too, one space."""
    return " ".join(text_of(value).split())


def excerpt(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` - 1 characters and "…": never longer than ``limit``."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def http_url(value: Any) -> str | None:
    """``value`` if it is an http or https URL (never ``javascript:`` and the like), else None."""
    url = text_of(value)
    return url if url.lower().startswith(("https://", "http://")) else None
