"""Gunicorn hooks (gunicorn reads ./gunicorn.conf.py by itself; the flags are in the Procfile).

Metrics are kept in files, one set per process (app/metrics): the master clears away
those of processes that no longer run when it starts, and drops a worker's live gauges
when the worker exits.
"""


def on_starting(server):
    from app import metrics

    removed = metrics.remove_dead_files()
    if removed:
        server.log.info("Removed %d metric files of stopped processes", removed)


def child_exit(server, worker):
    from app import metrics

    metrics.process_exited(worker.pid)
