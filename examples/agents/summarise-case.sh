#!/bin/sh
# A Casehook agent that summarises its case (README, "Agents").
#
# Casehook runs it without a shell, with the prompt on stdin and only these variables:
# CASEHOOK_CASE_ID, CASEHOOK_TASK_ID, CASEHOOK_RUN_ID, CASEHOOK_AGENT, PATH, and, when the
# worker has CASEHOOK_AGENT_API_URL set, CASEHOOK_API_URL and CASEHOOK_API_TOKEN (a token
# that works only under /api/cases/$CASEHOOK_CASE_ID and expires soon after the run).
# Whatever it prints lands on the case timeline; a non-zero exit fails the run.
set -eu

prompt=$(cat)
echo "Summary of case #$CASEHOOK_CASE_ID"
echo "Asked: $(printf '%s' "$prompt" | head -c 200)"
if [ -n "${CASEHOOK_API_URL:-}" ]; then
  curl -fsS -H "Authorization: Bearer $CASEHOOK_API_TOKEN" \
    "$CASEHOOK_API_URL/api/cases/$CASEHOOK_CASE_ID" |
    jq -r '"Title: \(.title)\nStatus: \(.status), severity \(.severity)\nEvents: \(.events | length), last: \(.events[-1].type)"'
fi
