"""Ops Portal settings: one module, driven by the environment (see README "Configuration").

With no variables set the portal runs on a machine that has only Python: SQLite, a file cache
and kombu's filesystem broker, all under var/. DATABASE_URL and REDIS_URL switch it to the
production setup (Postgres; Redis for cache and Celery broker).
"""

from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue
from redis.backoff import NoBackoff
from redis.retry import Retry

from opsportal.env import (
    env_bool,
    env_int,
    env_list,
    env_networks,
    env_origins,
    env_rate,
    env_str,
    env_timezone,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("OPSPORTAL_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)

# From the environment, else the key `make run` generated for the embedded setup; never a default.
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY and (VAR_DIR / "secret_key").is_file():
    SECRET_KEY = (VAR_DIR / "secret_key").read_text().strip()
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. `make run` generates one in var/secret_key; in production set a long random value."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_origins("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",  # only for its table, which opsportal's migration emptied into ApiToken
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_celery_beat",
    "opsportal",
    "incidents",
    "runbooks",
    "ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "opsportal.sessions.IdleTimeoutSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "opsportal.middleware.UserTimezoneMiddleware",
]

ROOT_URLCONF = "opsportal.urls"
WSGI_APPLICATION = "opsportal.wsgi.application"

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
                "opsportal.roles.roles_context",
                "opsportal.inbox.inbox_context",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_url("DATABASE_URL", {"postgres", "postgresql", "sqlite"})
if DATABASE_URL:
    try:
        _db = dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL cannot be used: {exc}") from None
else:
    _db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(VAR_DIR / "opsportal.sqlite3")}
if _db["ENGINE"] == "django.db.backends.postgresql":
    # A database host that does not answer (not one that refuses) fails a connection in seconds,
    # not after the kernel's TCP timeout of minutes (README "Outages"). libpq's minimum is 2 s.
    _db.setdefault("OPTIONS", {}).setdefault("connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=2))
# A psycopg connection pool per process (README "Deploying > Database connections"): for gunicorn
# with threads, where it caps a process's connections at this size however many threads it runs.
# Off (0) by default: a process then keeps one connection per thread for CONN_MAX_AGE (60 s).
# Leave it off on Celery workers: a prefork child runs one task at a time on one kept connection
# (CELERY_DB_REUSE_MAX below), so a pool there only adds the cost of making it.
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 0, minimum=0, maximum=100)
if DATABASE_POOL_MAX_SIZE and _db["ENGINE"] == "django.db.backends.postgresql":
    _db["CONN_MAX_AGE"] = 0  # the pool keeps the connections; Django refuses both at once
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_MAX_SIZE,
        "timeout": env_int("DATABASE_POOL_TIMEOUT", 10, minimum=1),  # seconds a request waits for a connection
        "max_idle": 300,
    }
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + IMMEDIATE lets the web server, the worker and beat share one file without
    # "database is locked" errors on concurrent writes.
    _db["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # Tests use a file, not memory, so Celery workers in other threads or processes share it.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test-opsportal.sqlite3")}
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (shared across processes in both setups) -----------------------------------------
# Seconds a request waits for Redis (cache, broker publish) before it gives up: outages answer
# fast (README "Outages"). The database's connect timeout is libpq's, at least 2 s.
DEPENDENCY_TIMEOUT = env_int("DEPENDENCY_TIMEOUT_MS", 1000, minimum=100, maximum=30_000) / 1000
REDIS_URL = env_url("REDIS_URL", {"redis", "rediss", "unix"})
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "opsportal",
            # Bounded, so a request that reads the cache while Redis is down fails within a
            # second instead of hanging (README "Outages"); no retries on a refused connection.
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": DEPENDENCY_TIMEOUT,
                "SOCKET_TIMEOUT": DEPENDENCY_TIMEOUT,
                "CONNECTION_POOL_KWARGS": {"retry": Retry(NoBackoff(), 0)},
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            "KEY_PREFIX": "opsportal",
        }
    }

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", {"redis", "rediss", "amqp", "amqps", "filesystem"}) or REDIS_URL
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "filesystem://"
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),  # not ./control in the working directory
        "store_processed": False,
        "polling_interval": 0.2,  # a directory scan is cheap; runbook steps should not wait a second each
    }
elif CELERY_BROKER_URL.startswith(("redis", "rediss", "unix")):
    # Redis has no acks: a message a worker took and never acked (acks_late, the worker died) goes
    # back to its queue after this many seconds. Keep it above the longest task (90 s) and countdown
    # (eta tasks are held unacked too): below that, a running task is handed to a second worker
    # (the step and delivery claims stop it from running twice, but it costs a wasted attempt).
    _visibility = env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=1)
    # The expired messages go back on kombu's sweep, every interval x throttle seconds (10 x 10 by
    # default): under a visibility timeout of a few minutes the sweep, not the timeout, would decide
    # when a dead worker's messages are handed out again. Sweep at a tenth of the timeout, at most
    # kombu's 100 s (the default timeout keeps kombu's defaults).
    _sweep = min(100, max(1, _visibility // 10))
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": _visibility,
        "unacked_restore_interval": min(10, _sweep),
        "unacked_restore_throttle": max(1, _sweep // min(10, _sweep)),
    }
    if CELERY_BROKER_URL.startswith("redis"):
        # kombu's Redis transport with one fix: a worker survives Redis dropping while a task is
        # in flight (opsportal/broker.py says how it died before).
        CELERY_BROKER_TRANSPORT = "opsportal.broker:RedisTransport"
else:
    # RabbitMQ redelivers an unacked message as soon as the consumer's connection closes (a worker
    # killed mid-task), so no visibility timeout. Its consumer_timeout (30 min by default) closes
    # the channel of a worker holding a message unacked longer than that: our task time limit is
    # 90 s, and a countdown or eta (held unacked until due) must stay under it (README "Deploying").
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Reconnect to the broker for as long as it is down (Celery's default gives up after 100 tries).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Publishing from a request (opsportal.broker.publish): connect/socket timeout, no retries.
BROKER_PUBLISH_TIMEOUT = DEPENDENCY_TIMEOUT
BROKER_PUBLISH_POOL_SIZE = 10
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SOFT_TIME_LIMIT = 60
# Celery's Django fixup closes the worker's database connection before and after every task unless
# this is set (celery 5.5 went back to a plain close()): each task then paid a new PostgreSQL
# connection, 15 % of a runbook step. With it the fixup closes only every this many tasks, and
# opsportal.celery does around each task what Django does around a request (close_old_connections:
# CONN_MAX_AGE and CONN_HEALTH_CHECKS), so a connection the database dropped is replaced first.
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_TIME_LIMIT = 90
# The beat schedule is rows in the database, edited in the admin under "Periodic tasks"
# (django-celery-beat); ops/migrations/0002_periodic_tasks.py seeds them. Settings hold none on
# purpose: the DatabaseScheduler writes every CELERY_BEAT_SCHEDULE entry over its row at each
# beat start, which would silently undo an admin's change of interval, crontab or arguments.
# django-celery-beat's DatabaseScheduler, riding out database outages (opsportal/beat.py).
CELERY_BEAT_SCHEDULER = "opsportal.beat:DatabaseScheduler"
BEAT_RESYNC_SECONDS = env_int("BEAT_RESYNC_SECONDS", 300, minimum=1)  # full re-read of the schedule
# Periodic tasks (by name) that beat sends at once when the database answers again after an outage.
BEAT_RUN_AFTER_OUTAGE = ("requeue-alert-deliveries",)
BEAT_DB_RETRY_MAX = env_int("BEAT_DB_RETRY_MAX", 30, minimum=1)  # seconds between tries while the database is down
CELERY_BEAT_SCHEDULE: dict = {}
# No result backend (results are ignored), so nothing expires: without this, beat would add a
# "celery.backend_cleanup" row that runs a no-op every night at 04:00.
CELERY_RESULT_EXPIRES = None
# Queues by kind of work (README "Deploying"), so a storm of one kind never starves another and
# each can get workers of its own (`celery worker -Q intake`). A worker started without -Q
# consumes all of them, which is what `make run` does.
#   intake      applying alert deliveries and paging people: the response clock runs
#   first_look  the read-only checks an alert starts at once
#   runbooks    steps of runs people start, and approved ops actions
#   celery      maintenance: sweeps, escalation ticks, webhooks, e-mail, reviews
OPSPORTAL_QUEUES = ("intake", "first_look", "runbooks", "celery")
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = tuple(Queue(name, Exchange(name), routing_key=name) for name in OPSPORTAL_QUEUES)
CELERY_TASK_ROUTES = {
    "incidents.tasks.process_alert_delivery": {"queue": "intake"},
    "incidents.tasks.send_page": {"queue": "intake"},
    "incidents.tasks.resolve_test_alert": {"queue": "intake"},
    "runbooks.*": {"queue": "runbooks"},
    # Approved dangerous ops actions are remediation work, like runbook steps.
    "ops.tasks.execute_request": {"queue": "runbooks"},
}

# --- Runbooks (README "Configuration > Runbooks") ---------------------------------------------
RUNBOOK_STEP_TIMEOUT = env_int("RUNBOOK_STEP_TIMEOUT", 30, minimum=1)  # seconds, per step unless it says otherwise
RUNBOOK_STEP_TIMEOUT_MAX = 600
RUNBOOK_STEP_RETRIES = env_int("RUNBOOK_STEP_RETRIES", 2, minimum=0)  # extra attempts after a connection error
RUNBOOK_STEP_RETRY_BACKOFF = env_int("RUNBOOK_STEP_RETRY_BACKOFF", 2, minimum=0)  # seconds, doubled per attempt
RUNBOOK_STEP_QUEUE_TIMEOUT = env_int("RUNBOOK_STEP_QUEUE_TIMEOUT", 600, minimum=10)  # no worker took it: timed out
# A queued step not picked up after this many seconds is published again (its message may have been
# lost between commit and publish, or wiped by a broker restart); the claim runs it once whatever comes.
RUNBOOK_STEP_REPUBLISH_AFTER = env_int("RUNBOOK_STEP_REPUBLISH_AFTER", 60, minimum=5)
# Checks of one first look queued at once; the rest follow as these finish, so one incident's many
# checks never stand between another incident and its first check.
RUNBOOK_FIRST_LOOK_CONCURRENCY = env_int("RUNBOOK_FIRST_LOOK_CONCURRENCY", 4, minimum=1)
RUNBOOK_STEP_OUTPUT_LIMIT = env_int("RUNBOOK_STEP_OUTPUT_LIMIT", 65_536, minimum=1024)  # characters kept per step
RUNBOOK_IMPORT_MAX_BYTES = env_int("RUNBOOK_IMPORT_MAX_BYTES", 1_048_576, minimum=1024)

# --- Auth and roles --------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "incidents:list"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalisation --------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_timezone("TIME_ZONE", "UTC")
# Beat reads crontabs in this zone, and a crontab added in the admin starts in it too.
CELERY_TIMEZONE = TIME_ZONE
USE_I18N = True
USE_TZ = True

# --- Static files (served by WhiteNoise; htmx is vendored, no CDN) ---------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise serves from here after collectstatic
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "opsportal.tokens.HashedTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["opsportal.roles.IsViewer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "opsportal.api.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "opsportal.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Ops Portal API",
    "DESCRIPTION": "Incidents, timelines and runbooks for on-call teams.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",  # not the CDN: the portal works offline and the CSP allows only 'self'
    "COMPONENT_SPLIT_REQUEST": True,
    # Several choice sets share the field name "kind": name each, so the schema (and check --deploy) is clean.
    "ENUM_NAME_OVERRIDES": {
        "EventKindEnum": "incidents.choices.EventKind",
        "ManualEventKindEnum": "incidents.choices.MANUAL_EVENT_KINDS",
        "SectionKindEnum": "runbooks.choices.SectionKind",
        "StepKindEnum": "runbooks.choices.StepKind",
    },
}

# --- Post-incident reviews ---------------------------------------------------------------
PIR_DUE_HOURS = env_int("PIR_DUE_HOURS", 48, minimum=1)
PIR_DUE_SOON_HOURS = env_int("PIR_DUE_SOON_HOURS", 24, minimum=1)

# --- E-mail (notifications) ------------------------------------------------------------------
# Unset, the public URL is where `make run` binds the web server (HOST, OPSPORTAL_PORT), so links
# printed by create_integration and sent in notifications answer on a development machine.
_RUN_HOST = env_str("HOST", "127.0.0.1").strip() or "127.0.0.1"
_RUN_HOST = "127.0.0.1" if _RUN_HOST in {"0.0.0.0", "::", "[::]"} else _RUN_HOST  # noqa: S104 - all interfaces
_RUN_HOST = f"[{_RUN_HOST}]" if ":" in _RUN_HOST and not _RUN_HOST.startswith("[") else _RUN_HOST
PORTAL_BASE_URL = env_str(
    "PORTAL_BASE_URL", f"http://{_RUN_HOST}:{env_int('OPSPORTAL_PORT', 8000, minimum=1, maximum=65535)}"
).rstrip("/")
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "ops-portal@localhost")
# How long a page's one-click acknowledge link works (incidents/alerting/paging.py).
PAGE_LINK_MAX_AGE_SECONDS = env_int("PAGE_LINK_MAX_AGE_SECONDS", 3600, minimum=60)

# --- Alert intake ----------------------------------------------------------------------------
# Refusals and duplicates kept per integration, each (its page's delivery log); older ones are pruned.
INTAKE_LOG_KEEP = env_int("INTAKE_LOG_KEEP", 100, minimum=10)
# A "send a test alert" resolves itself this long after it fired, through the intake again.
TEST_ALERT_RESOLVE_AFTER_SECONDS = env_int("TEST_ALERT_RESOLVE_AFTER_SECONDS", 60, minimum=1)

# --- Ops: retention, maintenance mode (README "Configuration > Ops") ----------------------------
RETENTION_DAYS = env_int("RETENTION_DAYS", 30, minimum=1)
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 1000, minimum=1)
# The alert intake's request body cap: 16 MiB holds a notification of 10 000 typical alerts
# (~0.6-1.5 KB each); larger bodies get a 413 (Alertmanager drops them: lower its max_alerts).
ALERT_INTAKE_MAX_BODY_BYTES = env_int("ALERT_INTAKE_MAX_BODY_BYTES", 16 * 1024 * 1024, minimum=64 * 1024)
ALERT_DELIVERY_RETENTION_DAYS = env_int("ALERT_DELIVERY_RETENTION_DAYS", RETENTION_DAYS, minimum=1)
MAINTENANCE_RETRY_AFTER = env_int("MAINTENANCE_RETRY_AFTER", 300, minimum=1)  # seconds, in the 503's Retry-After
OPS_HEALTH_CHECK_SEVERITY = env_str("OPS_HEALTH_CHECK_SEVERITY", "SEV3")
# A dangerous ops action asked for outside a runbook waits this long for a second admin (ops/approvals.py).
OPS_APPROVAL_TTL_MINUTES = env_int("OPS_APPROVAL_TTL_MINUTES", 60, minimum=1)
# A cache invalidation by pattern that would delete more keys than this (or every key) is dangerous:
# it needs a second admin's approval, whatever the pattern looks like.
OPS_CACHE_INVALIDATE_MAX_KEYS = env_int("OPS_CACHE_INVALIDATE_MAX_KEYS", 10_000, minimum=1)

# --- Limits ----------------------------------------------------------------------------------
TIMELINE_BODY_MAX_LENGTH = 20_000
# How often an open incident page asks "changed since?" (one cheap query; see incidents/live.py).
LIVE_POLL_SECONDS = env_int("LIVE_POLL_SECONDS", 1, minimum=1, maximum=60)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440, minimum=1024)

# --- Client IP, sign-in protection, throttles, metrics, logs, security (README sections) --------
INSTALLED_APPS += ["axes", "django_ratelimit", "django_prometheus", "csp"]
MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "opsportal.middleware.RequestObservabilityMiddleware",
    "opsportal.input_guard.RefuseNulMiddleware",  # before anything reads a field into a query
    *MIDDLEWARE,
    "csp.middleware.CSPMiddleware",
    "ops.maintenance.MaintenanceModeMiddleware",
    "axes.middleware.AxesMiddleware",  # turns a lockout into the 429 answer; last, as axes asks
    "opsportal.metrics.PrometheusAfterMiddleware",  # django_prometheus's, with bounded labels
]

TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
# With a count, the networks say which peers are our proxies (loopback always is).
TRUSTED_PROXY_CIDRS = env_networks("TRUSTED_PROXY_CIDRS")

AUTH_LOGIN_MAX_ATTEMPTS = env_int("AUTH_LOGIN_MAX_ATTEMPTS", 5, minimum=1)
AUTH_LOGIN_ATTEMPT_WINDOW_MINUTES = env_int("AUTH_LOGIN_ATTEMPT_WINDOW_MINUTES", 15, minimum=1)
AUTH_LOGIN_LOCKOUT_MINUTES = env_int("AUTH_LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
AUTH_RATE_LIMIT = env_rate("AUTH_RATE_LIMIT", "20/m")
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_HANDLER = "opsportal.lockout.LockoutHandler"
AXES_FAILURE_LIMIT = AUTH_LOGIN_MAX_ATTEMPTS
AXES_COOLOFF_TIME = timedelta(minutes=AUTH_LOGIN_LOCKOUT_MINUTES)
AXES_USE_ATTEMPT_EXPIRATION = True
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "opsportal.client_ip.client_key"
AXES_LOCKOUT_CALLABLE = "opsportal.lockout.lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_DISABLE_ACCESS_LOG = True  # successes are in the JSON logs and auth_success_total
AXES_ENABLE_ADMIN = False  # opsportal.admin shows the lockout table instead
if not REDIS_URL:
    # The embedded setup's file cache cannot increment atomically: the per-IP limiter is then
    # approximate, which a single-user laptop can live with. Production sets REDIS_URL.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = ["opsportal.throttles.AnonThrottle", "opsportal.throttles.UserThrottle"]
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
    "anon": env_rate("API_THROTTLE_ANON_RATE", "60/minute"),
    "user": env_rate("API_THROTTLE_USER_RATE", "600/minute"),
    "lead_burst": env_rate("LEAD_BURST_RATE", "5/minute"),
    "lead_hourly": env_rate("LEAD_HOURLY_RATE", "20/hour"),
}

METRICS_ENABLED = env_bool("METRICS_ENABLED", False)
METRICS_GUARD = env_str("METRICS_GUARD", "none").lower()
METRICS_GUARD_SECRET = env_str("METRICS_GUARD_SECRET")
METRICS_GUARD_ALLOWLIST = env_networks("METRICS_GUARD_ALLOWLIST")
if METRICS_GUARD not in {"none", "secret", "cidr"}:
    raise ImproperlyConfigured(f"METRICS_GUARD={METRICS_GUARD!r}: use none, secret or cidr.")
if METRICS_GUARD == "secret" and len(METRICS_GUARD_SECRET) < 16:
    raise ImproperlyConfigured("METRICS_GUARD=secret needs METRICS_GUARD_SECRET of at least 16 characters.")
if METRICS_GUARD == "cidr" and not METRICS_GUARD_ALLOWLIST:
    raise ImproperlyConfigured("METRICS_GUARD=cidr needs METRICS_GUARD_ALLOWLIST (e.g. 10.0.0.0/8).")
PROMETHEUS_EXPORT_MIGRATIONS = False
# A Celery worker's own /metrics (opsportal/metrics.py start_worker_exporter): on this port of this
# address, served by the worker's main process for its pool children (README "Deploying > Metrics").
# Off (0) unless set; set it on workers only. Nothing guards it but the bind address: keep it on a
# private interface the Prometheus server reaches.
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0, minimum=0, maximum=65535)
WORKER_METRICS_ADDR = env_str("WORKER_METRICS_ADDR", "127.0.0.1")
if WORKER_METRICS_PORT and not env_str("PROMETHEUS_MULTIPROC_DIR"):
    raise ImproperlyConfigured(
        "WORKER_METRICS_PORT needs PROMETHEUS_MULTIPROC_DIR: an empty directory of the worker's own, so its"
        " pool processes' metrics reach the exporter."
    )

SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$", r"^metrics$"]  # probes and scrapes inside the network
if TRUSTED_PROXY_COUNT or TRUSTED_PROXY_CIDRS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # our proxy terminates TLS and says so
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_HTTPONLY = CSRF_COOKIE_HTTPONLY = True  # htmx sends the token from the page, not the cookie
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_TIMEOUT_MINUTES", 60, minimum=1) * 60
# An idle timeout, not a fixed one: the expiry moves with activity, saved at most once a minute
# (opsportal/sessions.py) rather than on every request.
SESSION_TOUCH_SECONDS = 60
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
_CSP = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
if DEBUG:
    CONTENT_SECURITY_POLICY_REPORT_ONLY = _CSP  # violations show in the console; Django's debug page still works
else:
    CONTENT_SECURITY_POLICY = _CSP

CELERY_WORKER_HIJACK_ROOT_LOGGER = False
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "opsportal.logging.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}},
    "root": {"handlers": ["stdout"], "level": env_str("LOG_LEVEL", "INFO").upper()},
    "loggers": {
        # Django's own handlers would print a second, plain copy of these records.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "INFO"},
        "axes": {"level": "WARNING"},  # opsportal.auth logs each sign-in event once, in our words
    },
}
