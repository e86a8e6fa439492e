"""WSGI entry point: ``app = create_app()``.

Servers that import by module name (``gunicorn app:app``) get the ``app`` package, which
offers the same object; this file serves those that load a path, and ``python app.py``.
"""

from app import create_app

app = create_app()

if __name__ == "__main__":
    import os

    app.run(port=int(os.environ.get("PORT", "5000")), debug=True)
