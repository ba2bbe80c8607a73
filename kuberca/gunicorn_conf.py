"""Gunicorn configuration: `gunicorn kuberca.wsgi -c kuberca/gunicorn_conf.py`.

Gunicorn reads this module's lowercase globals as its settings; command-line
flags (what `manage.py serve` passes) win over them. On SIGTERM the master
stops accepting, lets workers finish in-flight requests for graceful_timeout
seconds, then kills them; keep the pod's terminationGracePeriodSeconds above
it. With PROMETHEUS_MULTIPROC_DIR set, workers write metrics there and a dead
worker's live gauges are dropped in child_exit.
"""

import os
from typing import Any

from prometheus_client import multiprocess

from kuberca import gunicorn_errors
from kuberca.env import (
    PORT_MAX,
    bind_address,
    env_choice,
    env_int,
    env_list,
    env_str,
)

_port = env_int("PORT", 8080, minimum=1, maximum=PORT_MAX)
bind = bind_address(env_str("HOST", "0.0.0.0"), _port)  # noqa: S104
workers = env_int("WEB_CONCURRENCY", 2, minimum=1)
threads = env_int("WEB_THREADS", 1, minimum=1)
timeout = env_int("WEB_TIMEOUT_SECONDS", 60, minimum=1)
graceful_timeout = env_int("WEB_GRACEFUL_TIMEOUT_SECONDS", 25, minimum=1)
# Used with WEB_THREADS > 1 (gthread; sync workers close every connection):
# longer than proxies' idle timeout, so the proxy is the side that closes.
keepalive = 75
# Recycling workers now and then bounds slow leaks; jitter avoids all at once.
max_requests = env_int("WEB_MAX_REQUESTS", 0, minimum=0)
max_requests_jitter = max(1, max_requests // 10) if max_requests else 0
forwarded_allow_ips = ",".join(env_list("TRUSTED_PROXIES")) or "127.0.0.1"
# The heartbeat file on tmpfs: a container's overlay disk can stall it.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
# The runtime control socket sits at one path per user ($HOME/.gunicorn), which
# two servers on one machine would share; nothing here uses it.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s'
# Requests gunicorn refuses itself are answered in JSON, not its HTML page.
gunicorn_errors.install()

if env_choice("LOG_FORMAT", "text", {"text", "json"}) == "json":
    # Gunicorn's own lines (boot, worker exits, the access log) in the same
    # one-object-a-line shape as kuberca's.
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "kuberca.logging.JsonFormatter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "propagate": False},
            "gunicorn.access": {"handlers": ["console"], "propagate": False},
        },
        "root": {"handlers": ["console"], "level": "INFO"},
    }


def on_starting(server: Any) -> None:
    """Create the metrics folder; emptying it is the launcher's job.

    The launcher (`manage.py serve`, the container entrypoint) empties it
    before anything starts, because under `serve` the task worker writes there
    too and may already have started.
    """
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    """Drop the live gauges of a worker that exited (recycled or killed)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
