"""Django settings for jeeves-runner.

Everything is driven by environment variables with safe defaults, so a fresh
checkout works with no configuration: SQLite in ``JEEVES_DATA_DIR`` (default
``./data``), DEBUG off, everything bound to 127.0.0.1. The runner's own settings
live in ``RUNNER`` (see ``jeeves_site.runner_config``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from jeeves_site.database import database_from_environment
from jeeves_site.env import env_bool, env_int, env_list, env_secret, env_str
from jeeves_site.listen_address import allowed_hosts, run_api_url
from jeeves_site.runner_config import load_runner_config, log_file_problem
from jeeves_site.secret_key import resolve_secret_key
from jeeves_site.secret_urls import SecretUrl
from jeeves_site.timezone import configured_time_zone

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("JEEVES_DATA_DIR", str(BASE_DIR / "data"))).resolve()

RUNNER, RUNNER_CONFIG_PROBLEMS = load_runner_config(data_dir=DATA_DIR)
# A log file Django could not open would stop every command with a traceback.
LOG_FILE_PROBLEM = log_file_problem(RUNNER)
RUNNER_CONFIG_PROBLEMS += [LOG_FILE_PROBLEM] if LOG_FILE_PROBLEM else []
RUNNER_CONFIG_ERRORS = [(p.where, p.message) for p in RUNNER_CONFIG_PROBLEMS if p.level == "error"]

DEBUG = env_bool("DJANGO_DEBUG", False)
DATABASES = {"default": database_from_environment(DATA_DIR, RUNNER.db_path)}
USES_DATA_DIR = DATABASES["default"]["ENGINE"].endswith("sqlite3")
SECRET_KEY = resolve_secret_key(DATA_DIR, debug=DEBUG, uses_data_dir=USES_DATA_DIR)

# A specific address the config binds (``host``) is also a name clients use for it.
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", allowed_hosts(RUNNER.host))
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# /metrics: a bearer token (or _FILE) lets Prometheus scrape from elsewhere; unset, loopback only.
METRICS_TOKEN = env_secret("JEEVES_METRICS_TOKEN")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    # Only for its static files: /api/docs serves Swagger UI from them, not from a CDN.
    "ninja",
    "runner",
    "statestore",
    "queues",
    "runner.api",
    "axes",
]

MIDDLEWARE = [
    # First, so nothing after it (logging and redirects included) sees a token in the path.
    "runner.api.prefix.TokenPrefixMiddleware",
    # Then a NUL in the URL: 400 on both databases, before any lookup (PostgreSQL: 500).
    "runner.api.nul_in_url.NulInUrlMiddleware",
    # Every API refusal is JSON, a method a route does not take included.
    "runner.api.not_allowed.JsonMethodNotAllowedMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "jeeves_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "jeeves_site" / "templates"],
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

WSGI_APPLICATION = "jeeves_site.wsgi.application"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
_ZONE = configured_time_zone()
TIME_ZONE = _ZONE.name
# Why the zone could not be known (then TIME_ZONE is UTC); runner.E004 reports it.
TIME_ZONE_PROBLEM = _ZONE.problem
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# No collected static files: WhiteNoise serves the apps' own (WHITENOISE_USE_FINDERS),
# and loading the settings creates nothing on disk (a script's client loads them too).
STATIC_ROOT = None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# The admin works without `collectstatic` (finders serve the apps' static files).
WHITENOISE_USE_FINDERS = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Request bodies above this are refused (the API answers 413): a job's inline script,
# a state value or a queue payload is small; anything bigger is a mistake or an attack.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("JEEVES_MAX_REQUEST_BYTES", 2_621_440, minimum=1024)

# Sessions live in a cookie signed with SECRET_KEY, not in the database: a copy of the
# database holds no session that could be replayed (see README, Security).
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_COOKIE_AGE = env_int("JEEVES_SESSION_AGE_S", 12 * 3600, minimum=60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# Admin login throttling (django-axes): after AXES_FAILURE_LIMIT failed logins for one
# username from one address, that pair is refused (429) for AXES_COOLOFF_TIME. Way back
# in: wait, or `manage.py axes_reset_username NAME` (`axes_reset` clears every lock).
AUTHENTICATION_BACKENDS = [
    "jeeves_site.login_throttle.WebLoginThrottle",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("JEEVES_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("JEEVES_LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
# Keyed on the pair, so nobody can lock the operator out from everywhere by failing
# on purpose; behind a reverse proxy every client is the proxy, and it is the username.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Failed attempts are kept (they are the lock); successful logins are not logged.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False
X_FRAME_OPTIONS = "DENY"

# django-q2 delivers runs; the `runs` table decides whether one starts (see
# runner/dispatch.py). Timeouts are the runner's own, so django-q2 never cuts a
# job short; the scheduler is ours, so django-q2's stays off.
Q_CLUSTER = {
    "name": env_str("JEEVES_Q_NAME", "jeeves"),
    # One worker process: it executes up to maxConcurrency runs on threads (runner.pool),
    # and is never recycled, since recycling would end the runs it holds.
    "workers": 1,
    "recycle": 0,
    # Above any sensible job timeout; django-q2 warns when timeout is unset.
    "timeout": 30 * 24 * 3600,
    "retry": 30 * 24 * 3600 + 3600,
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": -1,
    "queue_limit": 1,
    "poll": 0.05,
    "catch_up": False,
    "scheduler": False,
    "log_level": "WARNING",
}
if RUNNER.broker == "redis":
    Q_CLUSTER["redis"] = SecretUrl(RUNNER.redis_url)  # its repr hides the password
else:
    Q_CLUSTER["orm"] = "default"
    # Claims tasks in one statement instead of three writes a task. A task carries up
    # to 8 runs (runner.dispatch), so one at a time: what a host takes ahead (the task
    # claimed, one queued, one executing) stays about 24 runs.
    Q_CLUSTER["broker_class"] = "runner.broker.RunnerORM"
    Q_CLUSTER["bulk"] = 1

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"redact_tokens": {"()": "jeeves_site.log_redaction.RedactTokens"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_tokens"],
        }
    },
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {
        "runner": {
            "level": {"trace": "DEBUG", "warn": "WARNING", "fatal": "CRITICAL"}.get(
                RUNNER.logging.level, RUNNER.logging.level.upper()
            )
        },
    },
}
if RUNNER.logging.file and not LOG_FILE_PROBLEM:
    # config.json's logging.file: the log goes there too, created 0600 (it names jobs and errors).
    LOGGING["handlers"]["file"] = {
        "class": "jeeves_site.private_files.PrivateWatchedFileHandler",
        "filename": RUNNER.logging.file,
        "formatter": "plain",
        "filters": ["redact_tokens"],
    }
    LOGGING["root"]["handlers"].append("file")

# The original runner's HTTP dialect at the root paths (runner/api/original/).
# Loopback callers may use it without a token, as the "jeeves-loopback" user: the
# original's OpenClaw plugin sends no credentials. Off by default; `check` warns when on.
API_LOOPBACK_ANONYMOUS = RUNNER.api_loopback_anonymous  # apiLoopbackAnonymous
API_LOOPBACK_USER = env_str("JEEVES_API_LOOPBACK_USER", "jeeves-loopback")
# How long `POST /jobs/{id}/run` at the root waits for the run, as the original's
# clients expect; past it the answer is 202 with the run id (the run goes on).
API_RUN_WAIT_MAX_S = env_int("JEEVES_API_RUN_WAIT_MAX_S", 3600, minimum=1)
# The URL a script's JR_API_URL names: this server's /api/ as a script on this host sees it,
# at the address the web server binds (a wildcard's loopback; runner.api.own_listener).
RUN_API_URL = env_str("JEEVES_API_URL", run_api_url(RUNNER.host, RUNNER.port)).rstrip("/")
