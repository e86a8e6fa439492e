"""Casehook's tests. Runs before conftest imports the app: the metrics of the test session
(prometheus-client's multiprocess files, app/metrics) go to a directory of their own rather
than instance/prometheus, removed when the session ends."""

import atexit
import os
import shutil
import tempfile

_metrics_dir = tempfile.mkdtemp(prefix="casehook-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
atexit.register(shutil.rmtree, _metrics_dir, ignore_errors=True)
