"""Gunicorn hooks (gunicorn reads ./gunicorn.conf.py by itself; the flags are in the Procfile).

Metrics are kept in files, one set per process (app/metrics): the master clears away
those of processes that no longer run when it starts, and drops a worker's live gauges
when the worker exits. Each worker checks the attachment store once it has loaded the app,
so a wrong bucket or credentials show in the log at start-up, not at the first upload.
"""


def on_starting(server):
    from app import metrics

    removed = metrics.remove_dead_files()
    if removed:
        server.log.info("Removed %d metric files of stopped processes", removed)


def child_exit(server, worker):
    from app import metrics

    metrics.process_exited(worker.pid)


def post_worker_init(worker):
    import logging
    import threading

    app = worker.wsgi
    if not hasattr(app, "app_context"):
        return

    def check() -> None:
        from app.health import attachments_check

        with app.app_context():
            result = attachments_check()
        if result != "ok":  # through the app's logging (one JSON line), not gunicorn's
            logging.getLogger("app.storage").error(
                "attachments cannot be stored or served: %s", result.removeprefix("error: ")
            )

    # In a thread: an unreachable store must not hold up the worker's start.
    threading.Thread(target=check, name="attachments-check", daemon=True).start()
