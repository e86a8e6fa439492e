"""Fuzzing with Hypothesis (fixed seed, bounded): hostile input never answers 5xx and never
makes a delivery fail in the worker, on SQLite and Postgres.

- Inbound: signed, hostile-but-valid requests to all eight provider routes: the real
  fixtures (shared/fixtures) with wrong types in their fields (a field a provider reads is
  some path of the fixture), surrogates, NULs, huge numbers, over-long strings, deep nesting;
  truncated bodies, junk bytes, JSON nested thousands deep; hostile headers that become the
  event type or delivery id. Every accepted delivery is then processed in this process
  (``process_delivery``) and none may fail.
- The JSON API and the console: every route, with hostile ids in the path, hostile query
  parameters and hostile JSON or form bodies.

A request that raises (the test app propagates exceptions) counts as a 5xx. Failures are
collected rather than shrunk, so that one run lists every cause found.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import inspect
import itertools
import json
import re
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import clock
from app.extensions import db
from app.webhooks import processing
from app.webhooks.models import Delivery, Endpoint
from tests.conftest import BOTH_DATABASES, FIXTURES
from tests.providers.conftest import Sender

pytestmark = [pytest.mark.slow, BOTH_DATABASES]

#: Examples per test; with the seed fixed, every run sends the same requests. The API also
#: gets schema-driven examples from Schemathesis (test_api_schemathesis.py), hence fewer here.
PROVIDER_EXAMPLES = 600
API_EXAMPLES = 600
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

PROVIDERS = ("github", "gitlab", "jira", "slack", "sentry", "alertmanager", "pagerduty", "standard")
#: A Standard Webhooks message has no fixture folder: this one is shaped as the spec says.
STANDARD_MESSAGE = {
    "type": "incident.created",
    "timestamp": "2024-05-01T12:00:00Z",
    "dedup_key": "inc_42",
    "title": "Checkout answers 500",
    "data": {"id": "inc_42", "title": "Checkout answers 500", "severity": "critical",
             "url": "https://status.example.com/incidents/inc_42"},
}  # fmt: skip


@functools.cache
def fixture_bodies(provider: str) -> tuple[tuple[str, bytes], ...]:
    """``(name, raw bytes)`` of every fixture of ``provider``, sorted by name."""
    if provider == "standard":
        return (("incident.created", json.dumps(STANDARD_MESSAGE).encode()),)
    return tuple((p.stem, p.read_bytes()) for p in sorted((FIXTURES / provider).glob("*.json")))


# --- hostile values ---------------------------------------------------------------------------

#: Replaced, after serialisation, by JSON nested this deep (too deep for a Python value).
DEEP = "\u2063deep-{}\u2063"
LONG = ["x" * 201, "t" * 501, "é" * 600, "P" * 1025, "word " * 4000]
NASTY_TEXT = ["\ud800", "a\udfffb", "nul\x00byte", "\x00", "\u202egnp.exe", "\ufeff", " ", ""]
HUGE = [10**20, -(10**20), 2**63, 2**31, -1, 0, 10**300, 99999999999999999999]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(HUGE),
    st.integers(),
    st.floats(),  # NaN and infinities serialise as NaN/Infinity, which Python's json reads
    st.sampled_from(LONG + NASTY_TEXT),
    st.text(max_size=12),
    st.text(st.characters(codec=None, categories=["Cs", "Cc", "Co", "Zs"]), max_size=8),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=6), scalars, max_size=3),
    st.sampled_from([70, 900, 3000]).map(DEEP.format),
)


def paths_of(value, prefix=(), depth=4) -> list[tuple]:
    """Every key path into ``value`` down to ``depth`` levels, shallow ones first."""
    found = []
    if depth and isinstance(value, dict):
        found = [(*prefix, key) for key in value]
        for key, child in value.items():
            found += paths_of(child, (*prefix, key), depth - 1)
    elif depth and isinstance(value, list):
        found = [(*prefix, index) for index in range(min(len(value), 3))]
        for index, child in enumerate(value[:3]):
            found += paths_of(child, (*prefix, index), depth - 1)
    return found


def put(document, path: tuple, value) -> None:
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


def serialise(document, ensure_ascii: bool) -> bytes:
    """``document`` as JSON bytes; lone surrogates raw (invalid UTF-8) unless escaped, and
    every ``DEEP`` marker replaced by nesting that deep."""
    text = json.dumps(document, ensure_ascii=ensure_ascii)
    text = re.sub(
        r'"(?:\\u2063|\u2063)deep-(\d+)(?:\\u2063|\u2063)"',
        lambda m: '{"a":[' * int(m.group(1)) + "1" + "]}" * int(m.group(1)),
        text,
    )
    return text.encode("utf-8", "surrogatepass")


class _Reads(dict):
    """A JSON object that notes the path of every key a provider looks up in it."""

    def __init__(self, value: dict, path: tuple, seen: set) -> None:
        super().__init__(value)
        self._path, self._seen = path, seen

    def _wrap(self, key, value):
        self._seen.add((*self._path, key))
        return _recording(value, (*self._path, key), self._seen)

    def get(self, key, default=None):
        return self._wrap(key, super().get(key, default))

    def __getitem__(self, key):
        return self._wrap(key, super().__getitem__(key))

    def __contains__(self, key) -> bool:
        self._seen.add((*self._path, key))
        return super().__contains__(key)

    def items(self):
        return [(key, self._wrap(key, value)) for key, value in super().items()]

    def values(self):
        return [value for _key, value in self.items()]


def _recording(value, path: tuple, seen: set):
    if isinstance(value, dict):
        return _Reads(value, path, seen)
    if isinstance(value, list):
        return [_recording(item, (*path, index), seen) for index, item in enumerate(value)]
    return value


def fields_read(provider_name: str, name: str, raw: bytes) -> list[tuple]:
    """The key paths of fixture ``raw`` (called ``name``) that ``provider_name``'s module
    reads (delivery id, event type, split, case facts) or its built-in commands' conditions
    test; sorted, shallow ones first."""
    from app.webhooks.commands import matching
    from app.webhooks.providers import get_provider

    provider, seen = get_provider(provider_name), set()
    headers = {"X-GitHub-Event": name.split(".")[0], "Sentry-Hook-Resource": "issue"}
    payload = _recording(json.loads(raw), (), seen)
    with contextlib.suppress(Exception):
        provider.delivery_id(headers, payload)
    event_type = provider.event_type(headers, payload)
    for settings_ in ({}, {"group_by": "groupKey"}):
        for kind, subject in provider.split(event_type, payload, settings_):
            matching(provider.builtin_commands(), kind, subject)
            provider.case_facts(kind, subject)
    return sorted(seen, key=lambda path: (len(path), [str(step) for step in path]))


@st.composite
def mutated_fixture(draw, provider: str) -> bytes:
    """A fixture of ``provider`` with one to six fields given hostile values, mostly fields
    the provider reads."""
    name, raw = draw(st.sampled_from(fixture_bodies(provider)))
    document = json.loads(raw)
    paths = st.sampled_from(READS[provider, name]) | st.sampled_from(ALL_PATHS[provider, name])
    for path in draw(st.lists(paths, min_size=1, max_size=6)):
        with contextlib.suppress(KeyError, IndexError, TypeError):
            put(document, path, draw(values))  # fails when an earlier change replaced a parent
    return serialise(document, draw(st.booleans()))


#: ``{(provider, fixture name): [key path the provider reads]}``.
READS = {
    (provider, name): fields_read(provider, name, raw)
    for provider in PROVIDERS
    for name, raw in fixture_bodies(provider)
}
#: ``{(provider, fixture name): [every key path, four levels deep]}``.
ALL_PATHS = {
    (provider, name): paths_of(json.loads(raw))
    for provider in PROVIDERS
    for name, raw in fixture_bodies(provider)
}
#: One hostile value of each kind, for the sweep over every field a provider reads.
SWEEP_VALUES = [10**20, ["x"], "\ud800 NUL\x00 " + "long " * 250]


def sweep_bodies(provider: str) -> list[tuple[str, bytes]]:
    """Each fixture with each field its provider reads given each of ``SWEEP_VALUES``
    (fields shared by several fixtures of a provider once), as ``(what, body)``."""
    bodies, done = [], set()
    for name, raw in fixture_bodies(provider):
        for path in READS[provider, name]:
            if path in done:
                continue
            done.add(path)
            for value in SWEEP_VALUES:
                document = json.loads(raw)
                with contextlib.suppress(KeyError, IndexError, TypeError):
                    put(document, path, value)
                    bodies.append((f"{name} {path}={value!r:.30}", serialise(document, False)))
    return bodies


@st.composite
def hostile_body(draw, provider: str) -> bytes:
    kind = draw(st.sampled_from(["mutated"] * 6 + ["truncated", "junk", "deep", "not_object"]))
    if kind == "mutated":
        return draw(mutated_fixture(provider))
    if kind == "truncated":
        _name, raw = draw(st.sampled_from(fixture_bodies(provider)))
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if kind == "junk":
        return draw(st.binary(max_size=300))
    if kind == "deep":
        depth = draw(st.sampled_from([65, 200, 1000, 10_000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"action":[', "]}")]))
        return ("{" + '"x":' + opener * depth + "1" + closer * depth + "}").encode()
    return serialise(draw(st.one_of(scalars, st.lists(scalars, max_size=3))), True)


#: Header text a real HTTP server passes on (no control characters), long or odd.
header_text = st.one_of(
    st.sampled_from(["", "x" * 300, "é" * 250, "issues", "ping", "a.b.c" * 60]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
            max_size=40),
)  # fmt: skip


@st.composite
def unsigned_headers(draw) -> dict:
    """Hostile values for what a provider does not sign: event names, delivery ids."""
    return {
        "delivery_id": draw(
            st.one_of(st.builds(lambda: str(uuid.uuid4())), header_text.filter(bool))
        ),
        "content_type": draw(st.sampled_from(["application/json", "text/plain", ""])),
        "event": draw(
            st.one_of(
                st.sampled_from(
                    ["issues", "pull_request", "check_run", "workflow_run", "issue_comment", "ping"]
                ),
                header_text,
            )
        ),
        "resource": draw(st.one_of(st.sampled_from(["issue", "metric_alert"]), header_text)),
    }


def signed_headers(
    provider: str,
    secret: str,
    body: bytes,
    *,
    delivery_id: str | None = None,
    content_type: str = "application/json",
    event: str = "issues",
    resource: str = "issue",
) -> dict:
    """The headers ``provider`` sends with ``body``, correctly signed now; ``event`` is
    GitHub's and GitLab's event header, ``resource`` Sentry's."""
    now = str(int(clock.now().timestamp()))
    delivery_id = delivery_id or str(uuid.uuid4())
    sha = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": content_type} if content_type else {}
    if provider == "github":
        headers |= {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery_id,
                    "X-Hub-Signature-256": f"sha256={sha}"}  # fmt: skip
    elif provider == "gitlab":
        headers |= {"X-Gitlab-Event": event, "X-Gitlab-Token": secret,
                    "Idempotency-Key": delivery_id}  # fmt: skip
    elif provider == "jira":
        headers |= {"X-Atlassian-Webhook-Identifier": delivery_id,
                    "X-Hub-Signature": f"sha256={sha}"}  # fmt: skip
    elif provider == "pagerduty":
        headers |= {"X-Webhook-Id": delivery_id, "X-PagerDuty-Signature": f"v1={sha}"}
    elif provider == "sentry":
        headers |= {"Request-ID": delivery_id, "Sentry-Hook-Resource": resource,
                    "Sentry-Hook-Timestamp": now, "Sentry-Hook-Signature": sha}  # fmt: skip
    elif provider == "slack":
        digest = hmac.new(secret.encode(), f"v0:{now}:".encode() + body, hashlib.sha256)
        headers |= {"X-Slack-Request-Timestamp": now,
                    "X-Slack-Signature": f"v0={digest.hexdigest()}"}  # fmt: skip
    elif provider == "alertmanager":
        headers |= {"Authorization": f"Bearer {secret}"}
    elif provider == "standard":
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = f"{delivery_id}.{now}.".encode() + body
        signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        headers |= {"webhook-id": delivery_id, "webhook-timestamp": now,
                    "webhook-signature": f"v1,{signature}"}  # fmt: skip
    return headers


# --- running and recording --------------------------------------------------------------------


class Findings:
    """Requests that answered 5xx or raised, by cause; ``assert_none`` lists them."""

    def __init__(self) -> None:
        self.causes: dict[str, list[str]] = {}
        self.requests = 0

    def call(self, send, what: str):
        self.requests += 1
        try:
            response = send()
        except Exception as exc:
            self.add(f"{type(exc).__name__}: {' | '.join(str(exc).splitlines()[:2])[:200]}", what)
            db.session.rollback()
            return None
        if response.status_code >= 500:
            self.add(f"{response.status_code}: {response.get_data(as_text=True)[:160]}", what)
        return response

    def add(self, cause: str, what: str) -> None:
        self.causes.setdefault(re.sub(r"\d{3,}", "N", cause), []).append(what[:300])

    def assert_none(self) -> None:
        total = sum(map(len, self.causes.values()))
        report = "\n".join(
            f"- {len(seen)} x {cause}\n    e.g. {seen[0]}" for cause, seen in self.causes.items()
        )
        assert not self.causes, f"{total} of {self.requests} requests failed:\n{report}"


def process_received(app) -> list[str]:
    """Process every ``received`` delivery here; the failures as ``"id: error"``."""
    failed = []
    with app.app_context():
        pending = db.session.scalars(
            db.select(Delivery.id).where(Delivery.status == "received").order_by(Delivery.id)
        ).all()
        for delivery_pk in pending:
            try:
                processing.process_delivery(delivery_pk)
            except Exception as exc:
                processing.mark_failed(delivery_pk, exc)
        for delivery in db.session.scalars(db.select(Delivery).where(Delivery.status == "failed")):
            failed.append(f"{delivery.event_type[:60]!r}: {(delivery.outcome or '')[:200]}")
    return failed


# --- inbound webhooks -------------------------------------------------------------------------


def test_provider_routes_answer_no_5xx_and_fail_no_delivery(app, client):
    senders = {}
    for provider in PROVIDERS:
        kind = type(f"{provider}Sender", (Sender,), {"provider": provider, "source": "fuzz"})
        senders[provider] = kind(app, client)
    findings = Findings()

    @settings(FUZZ, max_examples=PROVIDER_EXAMPLES)
    @given(data=st.data())
    def send(data):
        provider = data.draw(st.sampled_from(PROVIDERS))
        sender = senders[provider]
        body = data.draw(hostile_body(provider))
        headers = signed_headers(provider, sender.secret, body, **data.draw(unsigned_headers()))
        with app.app_context():
            findings.call(
                lambda: sender.post(body, headers), f"{provider} {headers} {body[:200]!r}"
            )

    send()
    # Every field each provider reads, with a value of each wrong type.
    for provider, sender in senders.items():
        for what, body in sweep_bodies(provider):
            headers = signed_headers(provider, sender.secret, body, event=what.split(".")[0])
            with app.app_context():
                findings.call(
                    lambda s=sender, b=body, h=headers: s.post(b, h), f"{provider} {what}"
                )
    # Every provider, with JSON nested just over the limit and far over any parser's.
    for provider, sender in senders.items():
        for depth in (65, 10_000):
            body = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
            headers = signed_headers(provider, sender.secret, body)
            with app.app_context():
                response = findings.call(
                    lambda s=sender, b=body, h=headers: s.post(b, h), f"{provider} deep"
                )
            if response is not None and response.status_code != 400:
                findings.add(f"deep JSON answered {response.status_code}", f"{provider} {depth}")
    for failure in process_received(app):
        findings.add(f"delivery failed in the worker: {failure[:120]}", failure)
    findings.assert_none()


# --- JSON API and console ---------------------------------------------------------------------

ID_TEXT = ["1", "2", "0", "2147483648", "9223372036854775808", "99999999999999999999", "9" * 40]
PATH_TEXT = ["x", "%00", "%ED%A0%80", "a" * 300, "%C2%B2", "..", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]
QUERY_VALUES = ["1", "²", "-1", "0", "99999999999999999999", "1e9", "abc", "\x00", "a\x00b",
                "x" * 3000, "%ED%A0%80", "me", "9" * 40, " 3 ", "1.5"]  # fmt: skip
QUERY_NAMES = ["page", "per_page", "user", "status", "severity", "sort", "q", "since", "edit",
               "branch", "tab", "intent", "output", "provider", "endpoint", "assignee", "mine",
               "verdict", "endpoint_id", "poll", "limit"]  # fmt: skip
BODY_KEYS = ["action", "user", "severity", "tags", "reason", "note", "text", "title", "status",
             "name", "provider", "secret", "settings", "to_user", "resume_at", "intent",
             "summary", "content", "enabled", "label", "labels", "definition", "options",
             "evidence", "evidence_from_branch_id", "case_ids", "case_id", "keep_edits",
             "role", "email", "password", "kinds", "kind", "trigger", "conditions",
             "fixture", "payload", "event_type", "description", "branches"]  # fmt: skip
#: Wrong values for the sweep over every name a view reads.
SWEEP_API_VALUES = [10**20, "99999999999999999999", "²", ["x"], {"a": []}]
#: What a command definition has (app/webhooks/commands.py).
COMMAND_KEYS = ["name", "trigger", "conditions", "action", "priority", "title_template",
                "timeline_template", "description", "enabled", "stop_after_match", "path",
                "op", "value"]  # fmt: skip
#: Routes that would lock the fuzzing admin out (the rest may change anything).
SKIPPED = {"accounts.logout", "static", "webhooks.ingest", "accounts.login", "accounts.account"}


@st.composite
def path_for(draw, rule, names: list[str]) -> str:
    """``rule``'s URL with a hostile id for each ``<int:>`` and, for each other part, a hostile
    string or one of ``names`` (real endpoint ids, delivery ids, command names)."""
    url = rule.rule
    for name, converter in rule._converters.items():
        pool = ID_TEXT if type(converter).__name__.lower().startswith(("integer", "id")) else None
        value = draw(st.sampled_from(pool or [*PATH_TEXT, *names]))
        url = re.sub(rf"<(?:[a-z]+:)?{name}>", value, url)
    return url


def keys_read(app, rule) -> list[str]:
    """Names a view may read from a body: the string literals in its source (a superset)."""
    view = inspect.unwrap(app.view_functions[rule.endpoint])
    found = re.findall(r'"([a-z_]{2,30})"', inspect.getsource(view))
    return sorted(set(found) | set(COMMAND_KEYS if "command" in rule.endpoint else []))


@st.composite
def api_body(draw, read: list[str]):
    """A hostile body: mostly a JSON object of keys the view reads (``read``) or others, with
    hostile values; else deep, with a NUL or a lone surrogate, junk, or a form."""
    kind = draw(st.sampled_from(["object"] * 5 + ["deep", "surrogate", "junk", "form"]))
    keys_ = st.sampled_from(read) if read else st.sampled_from(BODY_KEYS)
    if kind == "object":
        keys = draw(st.lists(keys_ | st.sampled_from(BODY_KEYS), min_size=1, max_size=5,
                             unique=True))  # fmt: skip
        document = {key: draw(values) for key in keys}
        return {"data": serialise(document, draw(st.booleans())),
                "content_type": "application/json"}  # fmt: skip
    if kind == "deep":
        depth = draw(st.sampled_from([65, 1000, 10_000]))
        return {"data": ('{"note":' + "[" * depth + "]" * depth + "}").encode(),
                "content_type": "application/json"}  # fmt: skip
    if kind == "surrogate":
        key = draw(keys_)
        text = draw(st.sampled_from(['"\\ud800"', '"a\\u0000b"', '["\\udc00"]', '{"\\ud800": 1}']))
        return {"data": f'{{"{key}": {text}}}'.encode(), "content_type": "application/json"}
    if kind == "junk":
        return {"data": draw(st.binary(max_size=100)), "content_type": "application/json"}
    keys = draw(st.lists(keys_, min_size=1, max_size=5, unique=True))
    return {"data": {key: draw(st.sampled_from(QUERY_VALUES)) for key in keys}}


def test_api_and_console_answer_no_5xx(app, client, make_user):
    # Something to point at: a case from each of two providers, processed.
    for provider in ("github", "pagerduty"):
        sender = type("S", (Sender,), {"provider": provider, "source": "seed"})(app, client)
        for _name, body in fixture_bodies(provider)[:3]:
            headers = signed_headers(provider, sender.secret, body, event=_name.split(".")[0])
            sender.post(body, headers)
    assert process_received(app) == []
    make_user("engineer", "fuzz-engineer@example.com")
    with app.app_context():
        real = [*db.session.scalars(db.select(Delivery.id)).all()[:3], "github.open"]
        real += [endpoint.id for endpoint in db.session.scalars(db.select(Endpoint))]
    rules = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in SKIPPED
        and not rule.endpoint.startswith(("accounts.set_", "accounts.revoke"))
    ]
    reads = {rule.endpoint: keys_read(app, rule) for rule in rules}
    findings = Findings()

    @settings(FUZZ, max_examples=API_EXAMPLES)
    @given(data=st.data())
    def call(data):
        rule = data.draw(st.sampled_from(sorted(rules, key=lambda r: r.rule)))
        method = data.draw(st.sampled_from(sorted(rule.methods - {"HEAD", "OPTIONS"})))
        url = data.draw(path_for(rule, real))
        names = data.draw(st.lists(st.sampled_from(QUERY_NAMES), max_size=3, unique=True))
        query = {name: data.draw(st.sampled_from(QUERY_VALUES)) for name in names}
        body = data.draw(api_body(reads[rule.endpoint])) if method != "GET" else {}
        headers = {"Accept": "application/json"} if data.draw(st.booleans()) else {}
        with app.app_context():
            findings.call(
                lambda: client.open(
                    url, method=method, query_string=query, headers=headers, **body
                ),
                f"{method} {url} {query} {str(body)[:160]}",
            )

    call()
    # Every name each view reads, in its body (JSON and form) or query, with each wrong value.
    for rule in sorted(rules, key=lambda r: r.rule):
        url = re.sub(r"<int:[a-z_]+>", "1", rule.rule)
        url = re.sub(r"<[a-z_]+>", real[-1] if "endpoint" in rule.rule else real[0], url)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS", "DELETE"}):
            for key, value in itertools.product(reads[rule.endpoint], SWEEP_API_VALUES):
                if method == "GET":
                    sent = {"query_string": {key: json.dumps(value).strip('"')}}
                elif isinstance(value, str):
                    sent = {"data": {key: value}}
                else:
                    sent = {"json": {key: value}}
                with app.app_context():
                    findings.call(
                        lambda m=method, u=url, b=sent: client.open(u, method=m, **b),
                        f"{method} {url} {sent}",
                    )
    for failure in process_received(app):
        findings.add(f"delivery failed in the worker: {failure[:120]}", failure)
    # The cases named in the issue, each once.
    for url in ("/api/cases/99999999999999999999", "/cases/99999999999999999999",
                "/api/deliveries?page=²", "/api/deliveries?page=99999999999999999999",
                "/cases?page=99999999999999999999", "/api/cases?page=²",
                "/cases/1?edit=99999999999999999999&branch=99999999999999999999"):  # fmt: skip
        with app.app_context():
            response = findings.call(lambda u=url: client.get(u), url)
        if response is not None and url.startswith("/api/") and response.status_code >= 400:
            assert set(response.json) >= {"error", "detail"}, (url, response.json)
    findings.assert_none()
