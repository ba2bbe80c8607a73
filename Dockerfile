# syntax=docker/dockerfile:1
# kuberca container image: the same image runs web (default command), the
# task worker, the migrate Job and the prune CronJob.
#   docker build -t kuberca .
#   docker run -e DATABASE_URL=... -e SECRET_KEY=... -e ALLOWED_HOSTS=... -p 8080:8080 kuberca

# --- build: dependencies into a virtualenv -----------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Only the dependency list first, so code changes reuse this layer. The project
# itself is not installed: it runs from /app, where settings find BASE_DIR.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
    && pip install -r requirements.txt

# --- runtime ------------------------------------------------------------------
FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8080 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/kuberca-metrics \
    HOME=/tmp
RUN groupadd --system --gid 10001 kuberca \
    && useradd --system --uid 10001 --gid kuberca --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin kuberca
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY manage.py ./
COPY kuberca ./kuberca
COPY incidents ./incidents
COPY alerts ./alerts
COPY accounts ./accounts
COPY embeddings ./embeddings
COPY notifications ./notifications
COPY templates ./templates
COPY deploy/docker-entrypoint.sh /usr/local/bin/kuberca-entrypoint
# Static files at build time. DATABASE_URL is a dummy so settings do not start
# the embedded database; nothing connects to it during collectstatic. The
# metrics folder set above exists only once the entrypoint has made it, so
# this step runs without it (prometheus_client would fail to open its files).
RUN env -u PROMETHEUS_MULTIPROC_DIR \
    DATABASE_URL=postgres://build:build@127.0.0.1:1/build \
    SECRET_KEY=build-only-not-a-secret \
    ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput --verbosity 0 \
    && python -m compileall -q /app \
    && chmod 0755 /usr/local/bin/kuberca-entrypoint
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=4)"]
ENTRYPOINT ["kuberca-entrypoint"]
CMD ["gunicorn", "kuberca.wsgi", "-c", "kuberca/gunicorn_conf.py"]
