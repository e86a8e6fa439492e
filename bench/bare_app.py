"""The baseline for ``bench/ingest``: a bare Flask route that reads the body and answers 202.

Served by gunicorn with the same worker count and class as the Procfile's web line, so the
difference between the two runs is what Casehook's ingest does (verify, store, enqueue, log).
It echoes the delivery id as the real route does, so the load generator's Lua does the same
work against both.
"""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/webhooks/<provider>/<endpoint_id>")
def ingest(provider: str, endpoint_id: str):
    request.get_data(cache=False)
    return jsonify(delivery_id=request.headers.get("X-GitHub-Delivery", "")), 202


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")
