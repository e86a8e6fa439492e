"""Browser security headers on the console, and the client address behind a reverse proxy.

The console (every page but ``/webhooks/`` and ``/api/``, which browsers do not render) gets a
Content-Security-Policy that runs only our own script files: no inline scripts, no inline
event handlers, no ``eval`` (htmx runs with ``allowEval: false``, see ``static/console.js``),
no inline styles, no framing. Images may also come over HTTPS (screenshots in provider text
rendered as Markdown). Machines' routes are left as they were.
"""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: https:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

CONSOLE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

#: Routes for machines: JSON or plain answers that no browser renders as a page.
MACHINE_PREFIXES = ("/webhooks/", "/api/", "/metrics")


def add_console_headers(response: Response) -> Response:
    """``after_request``: the console headers, unless a view already set its own."""
    if not request.path.startswith(MACHINE_PREFIXES):
        for name, value in CONSOLE_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    """Add the console headers; trust ``TRUSTED_PROXIES`` hops of X-Forwarded-For/-Proto."""
    app.after_request(add_console_headers)
    if hops := app.config["TRUSTED_PROXIES"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
