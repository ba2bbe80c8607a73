#!/bin/sh
# Container entrypoint: prepare the metrics folder, make sure the admin user
# exists (web only), then exec the command so it runs as PID 1 and gets
# SIGTERM directly. Migrations are not run here: the migrate Job (Kubernetes)
# or the migrate service (docker compose) runs them once per release.
set -eu

if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    # Files of an earlier run (a restarted container keeps its emptyDir)
    # would be summed into every scrape.
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    rm -f "$PROMETHEUS_MULTIPROC_DIR"/*.db
fi

if [ "${1:-}" = "gunicorn" ]; then
    # Idempotent; a not-yet-migrated database must not keep the web down,
    # but a bad ADMIN_USERNAME or ADMIN_PASSWORD (exit 2, the line naming it
    # already printed) stops the container like any other bad setting.
    # Without the metrics folder: a finished process's files there would be
    # summed into every scrape of the web.
    status=0
    env -u PROMETHEUS_MULTIPROC_DIR python manage.py ensure_admin || status=$?
    if [ "$status" -eq 2 ]; then
        exit 2
    elif [ "$status" -ne 0 ]; then
        echo "kuberca: ensure_admin failed (database not migrated yet?); starting anyway" >&2
    fi
fi

exec "$@"
