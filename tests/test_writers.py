"""Writers: the built-in writer's documents on a realistic case, read for their content, and
the LLM writer against a local HTTP server that speaks the chat-completions protocol
(success, and every failure falling back to the built-in writer)."""

from __future__ import annotations

import copy
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.markdown import render_markdown
from app.writing import KINDS, Writer, get_writer, write_outputs
from app.writing.builtin import JARGON, BuiltinWriter
from app.writing.llm import LlmWriter, completions_url, llm_settings

# --- A realistic case: checkout errors after a deploy, three hypotheses --------------------------
#
# Alertmanager fired (twice) and resolved; the engineer noted on the root, forked into three
# hypotheses, ruled out two with reasons (one with an attached log), escalated to networking,
# parked waiting on the payments provider, had it claimed, found the cause on the third.

T = "2026-11-20T{}:00+00:00".format
SUMMARY = (
    "Renewed the expired TLS certificate on the payments-gateway upstream and reloaded the "
    "proxy; checkout error rate back under 0.1%."
)


def realistic_context() -> dict:
    root = {
        "id": 10,
        "label": "Case",
        "description": "",
        "status": "active",
        "reason": None,
        "parent_id": None,
        "fork_reason": None,
        "revived": False,
        "is_root": True,
        "notes": [
            {
                "text": (
                    "Error rate on /checkout jumped to 14% at 09:02, right after deploy "
                    "2026.11.20-3."
                ),
                "author": "alice@example.com",
                "created_at": T("09:10"),
                "attachments": [],
            }
        ],
    }
    pool = {
        "id": 11,
        "label": "Database connection pool exhausted",
        "description": "checkout-api runs out of pooled connections under load",
        "status": "dead_end",
        "reason": "pool usage peaked at 40% during the incident",
        "parent_id": 10,
        "fork_reason": "the errors started with the deploy and the traffic peak",
        "revived": False,
        "notes": [
            {
                "text": "Pulled pool stats from the checkout-api pods.",
                "author": "alice@example.com",
                "created_at": T("09:20"),
                "attachments": [
                    {"filename": "pool-stats.txt", "text": "active=16 idle=24 max=40\nwaiters=0\n"}
                ],
            }
        ],
    }
    deploy = {
        "id": 12,
        "label": "Bad deploy 2026.11.20-3",
        "description": "the release broke the payment call",
        "status": "dead_end",
        "reason": "rolling back to 2026.11.20-2 left the error rate at 14%",
        "parent_id": 10,
        "fork_reason": "the errors started with the deploy and the traffic peak",
        "revived": False,
        "notes": [
            {
                "text": "Rolled back to 2026.11.20-2; errors continued.",
                "author": "alice@example.com",
                "created_at": T("09:40"),
                "attachments": [
                    {
                        "filename": "rollback.log",
                        "text": (
                            "rollout complete\n"
                            "ERROR upstream payments-gateway: certificate verify failed\n"
                        ),
                    }
                ],
            }
        ],
    }
    tls = {
        "id": 13,
        "label": "Expired TLS certificate on the payments upstream",
        "description": "the gateway's certificate lapsed",
        "status": "solved",
        "reason": "the certificate expired at 08:59 UTC",
        "parent_id": 10,
        "fork_reason": "the errors started with the deploy and the traffic peak",
        "revived": False,
        "notes": [
            {
                "text": "openssl s_client shows notAfter=Nov 20 08:59:00 2026 GMT.",
                "author": "bob@example.com",
                "created_at": T("11:05"),
                "attachments": [],
            },
            {
                "text": "Renewed the certificate and reloaded the proxy.",
                "author": "bob@example.com",
                "created_at": T("11:20"),
                "attachments": [],
            },
        ],
    }
    cache = {
        "id": 14,
        "label": "CDN caching error pages",
        "description": "stale 502s served from the edge",
        "status": "untried",
        "reason": None,
        "parent_id": 10,
        "revived": False,
        "notes": [],
        "fork_reason": "the errors started with the deploy and the traffic peak",
    }
    return {
        "case": {
            "id": 42,
            "title": "HighErrorRate checkout-api (5xx above 5%)",
            "status": "resolved",
            "provider": "alertmanager",
            "severity": "critical",
            "tags": ["checkout", "payments"],
            "source_url": "https://alerts.example.com/#/alerts?receiver=oncall",
            "created_at": T("09:02"),
            "resolved_at": T("11:30"),
            "active_seconds": 5400,
            "parked_seconds": 3600,
            "resolution_summary": SUMMARY,
        },
        "events": [
            {"type": "case.opened", "actor": None, "created_at": T("09:02"), "payload": {}},
            {
                "type": "case.resolved",
                "actor": "alice@example.com",
                "created_at": T("09:50"),
                "payload": {},
            },
            {"type": "case.reopened", "actor": None, "created_at": T("09:55"), "payload": {}},
            {
                "type": "case.escalated",
                "actor": "alice@example.com",
                "created_at": T("10:00"),
                "payload": {},
            },
            {
                "type": "case.claimed",
                "actor": "bob@example.com",
                "created_at": T("10:50"),
                "payload": {},
            },
            {
                "type": "case.resolved",
                "actor": "bob@example.com",
                "created_at": T("11:30"),
                "payload": {"summary": SUMMARY},
            },
        ],
        "deliveries": [
            {
                "event_type": "alert.firing",
                "summary": "HighErrorRate firing: checkout-api 5xx at 14%",
                "received_at": T("09:02"),
            },
            {
                "event_type": "alert.firing",
                "summary": "HighErrorRate firing: checkout-api 5xx at 14%",
                "received_at": T("09:52"),
            },
            {
                "event_type": "alert.resolved",
                "summary": "HighErrorRate resolved",
                "received_at": T("11:28"),
            },
        ],
        "branches": [root, pool, deploy, tls, cache],
        "active_branch_id": 13,
        "handoffs": [
            {
                "id": 1,
                "intent": "escalate",
                "priority": "elevated",
                "notes": "needs someone with access to the payments proxy certificates",
                "waiting_on": None,
                "created_by": "alice@example.com",
                "created_at": T("10:00"),
                "claimed_by": "bob@example.com",
                "claimed_at": T("10:50"),
            },
            {
                "id": 2,
                "intent": "park",
                "priority": "normal",
                "notes": "asked the payments provider",
                "waiting_on": "the payments provider's support desk",
                "created_by": "bob@example.com",
                "created_at": T("10:20"),
                "claimed_by": "bob@example.com",
                "claimed_at": T("10:40"),
            },
        ],
    }


def section(markdown: str, heading: str) -> str:
    """The text under ``## heading`` up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"no section {heading!r} in:\n{markdown}"
    return match.group(1)


PLACEHOLDERS = re.compile(
    r"TODO|TBD|FIXME|\bNone\b|\bnull\b|N/A|\{\w*\}|\[\s*\]|\?\?|lorem|<[a-z_]+>", re.IGNORECASE
)


def assert_no_placeholders(text: str) -> None:
    found = PLACEHOLDERS.findall(text)
    assert not found, f"placeholder-like text {found} in:\n{text}"
    assert "\n\n\n" not in text, "an empty section or sentence left a gap"


def outputs(writer: Writer, context: dict, summary: str) -> dict:
    """The three documents as one dict: each kind's Markdown, ``kb_data``, and
    ``written_by`` {kind: {"writer", "model", "fallback_reason"}}."""
    written = write_outputs(writer, context, summary)
    return {
        **{kind: w.text for kind, w in written.items()},
        "kb_data": written["kb_article"].data or {},
        "written_by": {kind: w.by() for kind, w in written.items()},
    }


@pytest.fixture(scope="module")
def written():
    return outputs(BuiltinWriter(), realistic_context(), SUMMARY)


# --- Ticket notes -------------------------------------------------------------------------------


def test_ticket_notes_have_the_four_sections_in_order(written):
    notes = written["ticket_notes"]
    headings = re.findall(r"^## (.+)$", notes, re.M)
    assert headings == ["Problem", "Diagnostic steps", "Resolution", "Recommendations"]
    assert notes.startswith("# Ticket notes: HighErrorRate checkout-api (5xx above 5%)\n")
    assert_no_placeholders(notes)


def test_ticket_notes_problem_says_who_reported_what_and_when(written):
    problem = section(written["ticket_notes"], "Problem")
    assert (
        "Reported through Alertmanager on 2026-11-20 09:02 UTC as case #42 (severity critical)"
        in problem
    )
    assert "Source: <https://alerts.example.com/" in problem
    # Repeats of one alert read as one line with a count; each kind of delivery once.
    assert (
        "2026-11-20 09:02 UTC `alert.firing`: HighErrorRate firing: checkout-api 5xx at 14% "
        "(x2, last at 2026-11-20 09:52 UTC)"
    ) in problem
    assert "`alert.resolved`: HighErrorRate resolved" in problem
    assert "What the three deliveries said:" in problem


def test_ticket_notes_quote_the_source_description():
    context = realistic_context()
    context["incident"] = {"description": "Checkout answers 502.\n\n## Steps\n- pay by card"}
    notes = BuiltinWriter().document("ticket_notes", context, SUMMARY).text
    problem = notes.split("## Problem", 1)[1].split("\n## ", 1)[0]
    assert (
        "Alertmanager described it:\n\n> Checkout answers 502.\n>\n> ## Steps\n> - pay" in problem
    )
    assert "\n## Steps" not in notes  # the source's heading stays inside the quote
    del context["incident"]
    assert "described it" not in BuiltinWriter().document("ticket_notes", context, SUMMARY).text


def test_ticket_notes_diagnostic_steps_walk_the_branches_with_every_dead_end_reason(written):
    steps = section(written["ticket_notes"], "Diagnostic steps")
    # In map order: the root's notes, then each hypothesis.
    order = [
        steps.index(label)
        for label in (
            "Initial investigation",
            "Database connection pool exhausted",
            "Bad deploy 2026.11.20-3",
            "Expired TLS certificate on the payments upstream",
            "CDN caching error pages",
        )
    ]
    assert order == sorted(order)
    assert "Tried: Error rate on /checkout jumped to 14% at 09:02" in steps
    assert (
        "Forked into four hypotheses: “Database connection pool exhausted”, “Bad deploy "
        "2026.11.20-3”, “Expired TLS certificate on the payments upstream” and “CDN caching "
        "error pages”, because the errors started with the deploy and the traffic peak."
    ) in steps
    # Every dead end with its reason, under the branch it concludes.
    assert "Outcome: Dead end: pool usage peaked at 40% during the incident." in steps
    assert "Outcome: Dead end: rolling back to 2026.11.20-2 left the error rate at 14%." in steps
    assert "Outcome: Solved: the certificate expired at 08:59 UTC." in steps
    assert "Outcome: Not tried." in steps
    # What was tried comes from the notes, with who and when; an attachment's telling line.
    assert (
        "Tried: Rolled back to 2026.11.20-2; errors continued. "
        "(alice@example.com, 2026-11-20 09:40 UTC)"
    ) in steps
    assert (
        "Attached `rollback.log`, which shows "
        "“ERROR upstream payments-gateway: certificate verify failed”"
    ) in steps
    assert "Attached `pool-stats.txt`" in steps
    # The handoffs along the way.
    assert (
        "Escalated with elevated priority by alice@example.com on 2026-11-20 10:00 UTC: needs "
        "someone with access to the payments proxy certificates. Claimed by bob@example.com "
        "on 2026-11-20 10:50 UTC."
    ) in steps
    assert (
        "Parked by bob@example.com on 2026-11-20 10:20 UTC, waiting on the payments provider's "
        "support desk."
    ) in steps


def test_ticket_notes_resolution_gives_the_summary_and_the_solved_branch(written):
    resolution = section(written["ticket_notes"], "Resolution")
    assert SUMMARY in resolution
    assert (
        "The cause was confirmed on **Expired TLS certificate on the payments upstream**: the "
        "certificate expired at 08:59 UTC."
    ) in resolution
    assert (
        "Resolved by bob@example.com on 2026-11-20 11:30 UTC after 1 h 30 min of active work "
        "and 1 h parked."
    ) in resolution


def test_ticket_notes_recommendations_follow_from_the_facts(written):
    advice = section(written["ticket_notes"], "Recommendations")
    assert (
        "Rule these out first next time; they were checked here and were not the cause: "
        "“Database connection pool exhausted” (pool usage peaked at 40% during the incident); "
        "“Bad deploy 2026.11.20-3” (rolling back to 2026.11.20-2 left the error rate at 14%)."
    ) in advice
    assert "start with “Expired TLS certificate on the payments upstream”" in advice
    assert (
        "This case needed an escalation (needs someone with access to the payments proxy "
        "certificates); bob@example.com picked it up"
    ) in advice
    assert "The case was reopened once before this resolution" in advice
    assert "Left untried: “CDN caching error pages”." in advice


# --- Knowledge-base article ---------------------------------------------------------------------


def test_kb_data_is_structured_from_the_case(written):
    data = written["kb_data"]
    assert data["title"] == "HighErrorRate checkout-api (5xx above 5%)"
    assert data["root_cause"] == (
        "Expired TLS certificate on the payments upstream: the certificate expired at 08:59 UTC"
    )
    assert data["rule_out_first"] == [
        {
            "branch": "Database connection pool exhausted",
            "reason": "pool usage peaked at 40% during the incident",
        },
        {
            "branch": "Bad deploy 2026.11.20-3",
            "reason": "rolling back to 2026.11.20-2 left the error rate at 14%",
        },
    ]
    assert data["resolution_steps"] == [
        "openssl s_client shows notAfter=Nov 20 08:59:00 2026 GMT.",
        "Renewed the certificate and reloaded the proxy.",
        SUMMARY,
    ]
    assert "alert.firing: HighErrorRate firing: checkout-api 5xx at 14% (x2)" in data["symptoms"]
    assert data["tags"] == [
        "checkout",
        "payments",
        "alertmanager",
        "alert.firing",
        "alert.resolved",
    ]


def test_kb_article_markdown_lists_what_to_rule_out_first_with_reasons(written):
    article = written["kb_article"]
    assert re.findall(r"^## (.+)$", article, re.M) == [
        "Symptoms",
        "Root cause",
        "Resolution steps",
        "Rule out first",
        "Tags",
    ]
    rule_out = section(article, "Rule out first")
    assert (
        "- **Database connection pool exhausted**: pool usage peaked at 40% during the incident."
        in rule_out
    )
    assert (
        "- **Bad deploy 2026.11.20-3**: rolling back to 2026.11.20-2 left the error rate at 14%."
        in rule_out
    )
    assert "CDN caching" not in rule_out and "Expired TLS" not in rule_out
    assert "1. openssl s_client shows notAfter" in section(article, "Resolution steps")
    assert "`checkout` `payments` `alertmanager` `alert.firing` `alert.resolved`" in article
    assert_no_placeholders(article)


# --- Client summary -----------------------------------------------------------------------------


def test_client_summary_is_two_or_three_plain_paragraphs(written):
    summary = written["client_summary"]
    paragraphs = [p for p in summary.strip().split("\n\n") if p.strip()]
    assert 2 <= len(paragraphs) <= 3
    lowered = summary.lower()
    for word in JARGON:
        assert word not in lowered, f"jargon {word!r} in the client summary:\n{summary}"
    for event_type in ("alert.firing", "alert.resolved"):
        assert event_type not in summary
    assert "#" not in summary and "`" not in summary and "**" not in summary
    assert paragraphs[0] == (
        "On 20 November 2026, our monitoring alerted us to a problem: HighErrorRate checkout-api "
        "(5xx above 5%). We treated it as urgent."
    )
    assert "looked into three possible causes and ruled out two of them" in paragraphs[1]
    # The cause as found, not the team's name for the hypothesis.
    assert "We found the cause: the certificate expired at 08:59 UTC." in paragraphs[1]
    assert "Expired TLS certificate on the payments upstream" not in summary
    assert "waited on the payments provider's support desk" in paragraphs[1]
    assert SUMMARY in paragraphs[1]
    assert paragraphs[-1].startswith("The problem is now resolved (since 20 November 2026, about")
    assert_no_placeholders(summary)


def test_client_summary_never_shows_internal_names():
    context = realistic_context()
    context["case"]["title"] = "OPS-4411: Checkout payments fail"
    context["handoffs"][-1]["waiting_on"] = "OPS-4412 (vendor desk, bob@payments.example)"
    summary = (
        "Confirmed bad deploy 2026.11.20-3 was not it; alice@example.com renewed the "
        "certificate (case #12, handoff #3) and reloaded the proxy."
    )
    out = BuiltinWriter().document("client_summary", context, summary).text
    for internal in (
        "OPS-44", "@", "#12", "#3", "Bad deploy 2026.11.20-3", "Database connection pool",
        "Expired TLS certificate",
    ):  # fmt: skip
        assert internal.lower() not in out.lower(), (internal, out)
    assert out.startswith("On 20 November 2026, our monitoring alerted us to a problem: ")
    assert "Checkout payments fail." in out
    assert "a colleague renewed the certificate and reloaded the proxy." in out
    assert "waited on an internal ticket (vendor desk, a colleague)" in out


@pytest.mark.parametrize(
    ("statuses", "said"),
    [
        (["dead_end", "dead_end", "solved"], "three possible causes and ruled out two of them."),
        (["dead_end", "dead_end"], "looked into two possible causes and ruled both out."),
        (["dead_end", "dead_end", "dead_end"], "three possible causes and ruled all of them out."),
        (["dead_end", "untried", "solved"], "two possible causes and ruled out one of them."),
        (["dead_end"], "looked into one possible cause and ruled it out."),
        (["solved", "untried"], "Our team investigated the problem."),
    ],
)  # fmt: skip
def test_client_summary_counts_what_was_tried_and_ruled_out(statuses, said):
    context = realistic_context()
    root, *hypotheses = context["branches"]
    root["status"] = "dead_end"  # a root marked so is no hypothesis ruled out
    context["branches"] = [root] + [
        {
            **branch,
            "status": status,
            "reason": "it held" if status == "solved" else branch["reason"],
        }
        for branch, status in zip(hypotheses, statuses, strict=False)
    ]
    out = BuiltinWriter().document("client_summary", context, SUMMARY).text
    assert said in out, out


def test_documents_are_deterministic():
    first = outputs(BuiltinWriter(), realistic_context(), SUMMARY)
    second = outputs(BuiltinWriter(), copy.deepcopy(realistic_context()), SUMMARY)
    assert first == second
    assert first["written_by"] == {
        k: {"writer": "builtin", "model": None, "fallback_reason": None} for k in KINDS
    }


def test_missing_facts_leave_sentences_out_rather_than_inventing():
    bare = {"case": {"id": 3, "title": "Disk full on db-2", "provider": "standard"}}
    out = outputs(BuiltinWriter(), bare, "Deleted old WAL segments.")
    notes = out["ticket_notes"]
    assert re.findall(r"^## (.+)$", notes, re.M) == ["Problem", "Diagnostic steps", "Resolution"]
    assert "No diagnostic steps were recorded on this case." in notes
    assert "Source:" not in notes and "deliver" not in notes and "Resolved by" not in notes
    assert out["kb_data"] == {
        "title": "Disk full on db-2",
        "symptoms": ["Disk full on db-2."],
        "root_cause": "Deleted old WAL segments.",
        "resolution_steps": ["Deleted old WAL segments."],
        "rule_out_first": [],
        "tags": ["standard"],
    }
    assert "Rule out first" not in out["kb_article"]
    assert out["client_summary"] == (
        "A problem was reported to us: Disk full on db-2.\n\n"
        "What we did to fix it: Deleted old WAL segments.\n\n"
        "The problem is now resolved. If you notice it again, let us know and we will pick it "
        "straight back up.\n"
    )
    for text in (notes, out["kb_article"], out["client_summary"]):
        assert_no_placeholders(text)
    # Nothing at all: still no placeholders and no crash.
    empty = outputs(BuiltinWriter(), {}, "")
    for kind in KINDS:
        assert_no_placeholders(empty[kind])


def test_payload_text_cannot_inject_html_or_markdown_structure():
    context = realistic_context()
    context["case"]["title"] = "<script>alert(1)</script> `x`\n## Injected"
    context["branches"][1]["reason"] = "<img src=x onerror=alert(2)>"
    out = outputs(BuiltinWriter(), context, "<b>fixed</b>")
    assert "\n## Injected" not in out["ticket_notes"]
    for kind in KINDS:
        html = str(render_markdown(out[kind]))
        assert (
            "<script" not in html
            and "<img" not in html
            and "onerror=" not in html.replace("onerror=alert(2)&gt;", "")
        )


# --- Assessment, briefing, branch summaries -----------------------------------------------------


def open_context() -> dict:
    """The realistic case mid-way: before the cause was found, while escalating."""
    context = realistic_context()
    context["case"].update(status="open", resolved_at=None)
    tls = context["branches"][3]
    tls.update(status="active", reason=None)
    tls["notes"] = tls["notes"][:1]
    context["handoffs"] = []
    return context


def test_assessment_names_the_active_hypothesis_and_puts_untried_first():
    assessment = BuiltinWriter().assessment(open_context()).data
    assert assessment["likely_cause"] == (
        "Expired TLS certificate on the payments upstream (the gateway's certificate lapsed): "
        "the hypothesis being worked, not confirmed yet (one note so far)."
    )
    steps = assessment["suggested_steps"]
    assert steps[0] == "Try “CDN caching error pages”: stale 502s served from the edge."
    assert (
        "Don't repeat “Database connection pool exhausted”: ruled out (pool usage peaked "
        "at 40% during the incident)."
    ) in steps
    # Four notes and two dead ends: some evidence, not yet a lot.
    assert assessment["confidence"] == "medium"


def test_assessment_confidence_tracks_the_evidence_and_stays_honest():
    writer = BuiltinWriter()
    nothing = {
        "case": {"title": "Disk full"},
        "deliveries": [
            {"event_type": "alert.firing", "summary": "disk 97% on db-2", "received_at": T("09:00")}
        ],
    }
    bare = writer.assessment(nothing).data
    assert bare == {
        "likely_cause": "Not established yet. The latest report says: disk 97% on db-2.",
        "suggested_steps": ["Fork the case into hypotheses and note what each one shows."],
        "confidence": "low",
    }
    rich = open_context()
    rich["branches"][3]["notes"] *= 3  # more notes on the active branch
    assert writer.assessment(rich).data["confidence"] == "high"
    solved = realistic_context()
    assert writer.assessment(solved).data["confidence"] == "high"
    assert (
        writer.assessment(solved)
        .data["likely_cause"]
        .startswith("Expired TLS certificate on the payments upstream (marked solved")
    )


def test_assessment_reads_suggestions_from_notes():
    context = open_context()
    context["branches"][4]["status"] = "active"  # nothing untried any more
    context["branches"][3]["notes"].append(
        {
            "text": "Cert looks fine on the edge. Next: check the upstream's chain with openssl.",
            "author": "alice@example.com",
            "created_at": T("10:30"),
            "attachments": [],
        }
    )
    steps = BuiltinWriter().assessment(context).data["suggested_steps"]
    assert steps[0] == (
        "From the notes on “Expired TLS certificate on the payments upstream”: Next: check the "
        "upstream's chain with openssl."
    )


def test_briefing_for_an_escalation_says_where_it_stands_and_what_to_avoid():
    handoff = {
        "intent": "escalate",
        "priority": "elevated",
        "created_by": "alice@example.com",
        "created_at": T("10:00"),
        "notes": "needs someone with access to the proxy certificates",
        "snapshot": {"next_step": "Check the certificate on the payments upstream."},
    }
    briefing = BuiltinWriter().briefing(open_context(), handoff).text
    assert re.findall(r"^## (.+)$", briefing, re.M) == [
        "Where it stands",
        "Why it was escalated",
        "What was tried",
        "Dead ends: don't repeat these",
        "Next step",
    ]
    assert (
        "**HighErrorRate checkout-api (5xx above 5%)** was escalated with elevated priority by "
        "alice@example.com on 2026-11-20 10:00 UTC."
    ) in briefing
    assert (
        "The active hypothesis is **Expired TLS certificate on the payments upstream**." in briefing
    )
    assert (
        "- **Bad deploy 2026.11.20-3**: rolling back to 2026.11.20-2 left the error rate at 14%."
        in briefing
    )
    assert (
        section(briefing, "Next step").strip() == "Check the certificate on the payments upstream."
    )
    assert_no_placeholders(briefing)


def test_briefing_for_a_parked_case_says_what_it_waits_on():
    handoff = {
        "intent": "park",
        "notes": "asked the provider",
        "created_at": T("10:20"),
        "waiting_on": "the payments provider's support desk",
        "resume_at": T("14:00"),
    }
    briefing = BuiltinWriter().briefing(open_context(), handoff).text
    waiting = section(briefing, "What it is waiting on")
    assert "the payments provider's support desk" in waiting
    assert "Planned to resume at 2026-11-20 14:00 UTC." in waiting
    # No next step in the handoff: the first untried hypothesis.
    assert section(briefing, "Next step").strip() == (
        "Try “CDN caching error pages”: stale 502s served from the edge."
    )


def test_branch_summary_says_what_was_tried_and_concluded():
    context = realistic_context()
    writer = BuiltinWriter()
    assert writer.branch_summary(context["branches"][2]).text == (
        "- Tried: Rolled back to 2026.11.20-2; errors continued. "
        "(alice@example.com, 2026-11-20 09:40 UTC)\n"
        "- Attached `rollback.log`: “ERROR upstream payments-gateway: certificate verify failed”\n"
        "- **Dead end**: rolling back to 2026.11.20-2 left the error rate at 14%."
    )
    assert writer.branch_summary(context["branches"][4]).text == "Not tried yet."
    assert (
        writer.branch_summary({"status": "active", "notes": []}).text
        == "Being worked; nothing noted yet."
    )
    revived = {
        **context["branches"][1],
        "status": "active",
        "revived": True,
        "revival_evidence": "pool waiters climbed to 30 at 10:15",
    }
    assert writer.branch_summary(revived).text.endswith(
        "- **Revived**: pool waiters climbed to 30 at 10:15."
    )


# --- The LLM writer, against a local chat-completions server ------------------------------------


class ChatServer:
    """A tiny OpenAI-compatible ``/v1/chat/completions`` in a thread. ``mode``: ok, error,
    slow, malformed, not_json_kb (everything fine except the KB answer), jargon."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                prompt = body["messages"][-1]["content"]
                task = re.search(r"Task \((\w+)\)", prompt).group(1)
                if server.mode == "error":
                    return self._send(500, b'{"error": {"message": "overloaded"}}')
                if server.mode == "slow":
                    time.sleep(1.0)
                if server.mode == "malformed":
                    return self._send(200, b"<html>not json</html>")
                answer = server.answer(task, server.mode)
                completion = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "model": "local-model-7b",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": "stop",
                        }
                    ],
                }
                return self._send(200, json.dumps(completion).encode())

            def _send(self, status, payload):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def answer(task: str, mode: str) -> str:
        if task == "kb_article":
            if mode == "not_json_kb":
                return "Here is your article: it was the certificate."
            return (
                "```json\n"
                + json.dumps(
                    {
                        "title": "Checkout 5xx from an expired upstream certificate",
                        "symptoms": ["checkout-api 5xx at 14%"],
                        "root_cause": "The payments upstream certificate expired at 08:59 UTC.",
                        "resolution_steps": ["Renew the certificate", "Reload the proxy"],
                        "rule_out_first": [
                            {
                                "branch": "Database connection pool exhausted",
                                "reason": "pool usage peaked at 40%",
                            }
                        ],
                        "tags": ["tls", "checkout"],
                    }
                )
                + "\n```"
            )
        if task == "client_summary":
            if mode == "jargon":
                return "We checked three branches and found the cause."
            if mode == "internal":
                return (
                    "Alice@example.com found an Expired TLS certificate on the payments upstream."
                )
            return (
                "Checkout payments failed for a while this morning.\n\nWe fixed it; it is resolved."
            )
        if task == "assessment":
            return json.dumps(
                {
                    "likely_cause": "An expired certificate",
                    "confidence": "medium",
                    "suggested_steps": ["Check the certificate dates"],
                }
            )
        return f"## From the model\n\nThe {task} as the model wrote it."

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat_server():
    server = ChatServer()
    yield server
    server.close()


def llm(server: ChatServer, timeout: float = 5) -> LlmWriter:
    return LlmWriter(base_url=server.url, model="gpt-test", api_key="sk-local", timeout=timeout)


def test_llm_writer_writes_each_document_and_records_the_model(chat_server):
    writer = llm(chat_server)
    out = outputs(writer, realistic_context(), SUMMARY)
    assert out["written_by"] == {
        k: {"writer": "llm", "model": "local-model-7b", "fallback_reason": None} for k in KINDS
    }
    assert out["ticket_notes"] == "## From the model\n\nThe ticket_notes as the model wrote it.\n"
    assert out["client_summary"].startswith("Checkout payments failed")
    # The KB answer came as fenced JSON: validated, stored as data, rendered as our Markdown.
    assert out["kb_data"]["rule_out_first"] == [
        {"branch": "Database connection pool exhausted", "reason": "pool usage peaked at 40%"}
    ]
    assert "## Rule out first" in out["kb_article"] and "`tls` `checkout`" in out["kb_article"]
    # The protocol: one POST per document, the model asked for, the key, the facts as JSON.
    assert [r["path"] for r in chat_server.requests] == ["/v1/chat/completions"] * 3
    first = chat_server.requests[0]
    assert first["headers"]["Authorization"] == "Bearer sk-local"
    assert first["body"]["model"] == "gpt-test"
    assert first["body"]["messages"][0]["role"] == "system"
    prompt = first["body"]["messages"][1]["content"]
    assert "rolling back to 2026.11.20-2 left the error rate at 14%" in prompt
    assert SUMMARY in prompt
    facts = json.loads(prompt.split("The facts, as JSON:\n", 1)[1])
    assert facts["case"]["id"] == 42 and len(facts["branches"]) == 5


@pytest.mark.parametrize(
    ("mode", "timeout", "reason"),
    [
        ("error", 5, "answered 500"),
        ("slow", 0.2, "no answer within 0.2 s"),
        ("malformed", 5, "the answer is not a chat completion"),
    ],
)
def test_llm_failures_fall_back_to_the_builtin_writer(chat_server, mode, timeout, reason):
    chat_server.mode = mode
    out = outputs(llm(chat_server, timeout), realistic_context(), SUMMARY)
    builtin = outputs(BuiltinWriter(), realistic_context(), SUMMARY)
    for kind in ("ticket_notes", "kb_article", "kb_data", "client_summary"):
        assert out[kind] == builtin[kind]
    for kind in KINDS:
        by = out["written_by"][kind]
        assert by["writer"] == "builtin" and by["model"] is None
        assert reason in by["fallback_reason"]


def test_an_unusable_structured_answer_falls_back_for_that_document_only(chat_server):
    chat_server.mode = "not_json_kb"
    out = outputs(llm(chat_server), realistic_context(), SUMMARY)
    assert out["written_by"]["ticket_notes"]["writer"] == "llm"
    assert out["written_by"]["client_summary"]["writer"] == "llm"
    kb = out["written_by"]["kb_article"]
    assert kb["writer"] == "builtin" and "asked for JSON" in kb["fallback_reason"]
    assert out["kb_data"] == outputs(BuiltinWriter(), realistic_context(), SUMMARY)["kb_data"]


def test_a_client_summary_with_jargon_is_refused(chat_server):
    chat_server.mode = "jargon"
    writer = llm(chat_server)
    written = writer.document("client_summary", realistic_context(), SUMMARY)
    assert written.writer == "builtin" and "internal words: branch" in written.fallback_reason
    assert written.written_by == "builtin"


def test_a_client_summary_naming_internal_things_is_refused(chat_server):
    chat_server.mode = "internal"
    written = llm(chat_server).document("client_summary", realistic_context(), SUMMARY)
    assert written.writer == "builtin", written.text
    assert written.fallback_reason.endswith(
        "names internal things: Expired TLS certificate on the payments upstream, Alice@example.com"
    )


def test_llm_unreachable_falls_back():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    writer = LlmWriter(base_url=f"http://127.0.0.1:{port}", model="m", timeout=2)
    written = writer.document("ticket_notes", realistic_context(), SUMMARY)
    assert written.writer == "builtin" and "could not reach" in written.fallback_reason
    assert (
        written.text == BuiltinWriter().document("ticket_notes", realistic_context(), SUMMARY).text
    )


def test_llm_assessment_briefing_and_summary_with_fallback(chat_server):
    writer = llm(chat_server)
    assessment = writer.assessment(open_context())
    assert assessment.data == {
        "likely_cause": "An expired certificate",
        "suggested_steps": ["Check the certificate dates"],
        "confidence": "medium",
    }
    # Who wrote it comes back with the writing, not through the writer's state.
    assert assessment.written_by == "llm (local-model-7b)"
    briefing = writer.briefing(open_context(), {"intent": "park"})
    assert briefing.text.startswith("## From the model") and briefing.writer == "llm"
    summary = writer.branch_summary(realistic_context()["branches"][1])
    assert summary.text.startswith("## From the model")
    chat_server.mode = "error"
    fallback = writer.assessment(open_context())
    assert fallback.data == BuiltinWriter().assessment(open_context()).data
    assert (fallback.writer, fallback.model) == ("builtin", None)
    assert "answered 500" in fallback.fallback_reason
    assert writer.briefing(open_context(), {"intent": "park"}).written_by == "builtin"


def test_get_writer_follows_the_settings(app, chat_server, monkeypatch):
    for key in ("LLM_BASE_URL", "LLM_MODEL", "LLM_API_KEY", "LLM_TIMEOUT_SECONDS"):
        monkeypatch.delenv(key, raising=False)
    with app.app_context():
        assert isinstance(get_writer(), BuiltinWriter)
        app.config["LLM_BASE_URL"] = chat_server.url + "/v1/"
        assert isinstance(get_writer(), BuiltinWriter)  # no model: nothing to ask for
        app.config["LLM_MODEL"] = "gpt-test"
        writer = get_writer()
        assert isinstance(writer, LlmWriter)
        assert writer.url == chat_server.url + "/v1/chat/completions"
        assert (writer.timeout, writer.api_key) == (30.0, None)
        monkeypatch.setenv("LLM_TIMEOUT_SECONDS", "4.5")
        monkeypatch.setenv("LLM_API_KEY", "sk-env")
        assert llm_settings() == {
            "base_url": chat_server.url + "/v1/",
            "model": "gpt-test",
            "api_key": "sk-env",
            "timeout": 4.5,
        }
    assert (
        completions_url("https://api.example.com") == "https://api.example.com/v1/chat/completions"
    )
