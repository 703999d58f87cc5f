"""Settings of the annotation site, read from the environment with embedded defaults.

With no variable set, the site runs on SQLite under `var/` with a filesystem Celery broker, so
`make demo` needs no server started by hand. Every variable is listed in `.env.example`.
"""
from __future__ import annotations

from pathlib import Path

import dj_database_url

from annotation_site.env import env_bool, env_float, env_int, env_list, env_str  # noqa: F401

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-key-change-me-in-production")
DEBUG = env_bool("DEBUG", True)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "annotation_site.accounts",
    "annotation_site.annotation",
    "annotation_site.generation",
    "annotation_site.batches",
    "annotation_site.runs",
    "annotation_site.quality",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "annotation_site.urls"
WSGI_APPLICATION = "annotation_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "annotation_site" / "templates"],
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

# SQLite is the embedded default; DATABASE_URL (postgres://...) selects PostgreSQL, which the
# assignment queue needs for SELECT ... FOR UPDATE SKIP LOCKED under many annotators.
_database_url = env_str("DATABASE_URL", "")
if _database_url:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {
                # WAL lets the web process read while the worker writes; IMMEDIATE takes the write
                # lock at BEGIN so concurrent writers queue instead of failing with "locked".
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    }
# Several test runs may share one PostgreSQL server; each can name its own test database.
if env_str("TEST_DATABASE_NAME", ""):
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME", "")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 6}},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        # DRF's token auth, loading the role and profile in the same query (one round trip, not three).
        "annotation_site.accounts.authentication.RoleTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "annotation_site.errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RLHF loop API",
    "DESCRIPTION": "Annotation, batches, checkpoints and deployments of the human-feedback loop.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page's assets come from the installed sidecar package, not a CDN: works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Annotation -------------------------------------------------------------------------------
# How long a claimed item stays reserved for its annotator before another may take it.
ASSIGNMENT_TTL_SECONDS = env_int("ASSIGNMENT_TTL_SECONDS", 30 * 60, minimum=30)
# Weekly quota of a new annotator (editable per annotator by admins).
DEFAULT_WEEKLY_QUOTA = env_int("DEFAULT_WEEKLY_QUOTA", 200, minimum=0)
# How often the annotate page asks whether new items are ready while it has none to show.
ANNOTATE_POLL_MS = env_int("ANNOTATE_POLL_MS", 3000, minimum=250)

# --- Celery -----------------------------------------------------------------------------------
# Redis in production and CI. The embedded default is kombu's filesystem transport: a real
# worker process started by `make demo` consumes it with no broker server to run by hand.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
_celery_dir = VAR_DIR / "celery"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("queue", "processed", "control"):
        (_celery_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "queue"),
        "data_folder_out": str(_celery_dir / "queue"),
        "processed_folder": str(_celery_dir / "processed"),
        "control_folder": str(_celery_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# A task is acknowledged only once it finished, and a worker that dies mid-task gives it back to
# the queue: a crashed export is redelivered, never silently dropped.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# With the broker down, publishing gives up after about two seconds instead of hanging a web
# request; the caller records the failure and beat's export watchdog enqueues it again later.
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 2.0)
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # An unacknowledged task (acks_late) is redelivered after this long; it must exceed the longest
    # export, else a slow export would run twice. Dead workers are caught sooner by the watchdog.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 6 * 3600, minimum=60),
        "socket_connect_timeout": CELERY_BROKER_CONNECTION_TIMEOUT,
    }
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Training runs go to the "training" queue, consumed only by the GPU training worker
# (docker-compose.yml); every other task goes to the default "celery" queue.
CELERY_TASK_ROUTES = {
    "annotation_site.runs.tasks.*": {"queue": "training"},
    # Scoring comparisons with a reward model needs torch and the model's files.
    "annotation_site.quality.tasks.reward_model_*": {"queue": "training"},
}

# --- Batches, checkpoints, serving ----------------------------------------------------------------
EXPORT_ROOT = Path(env_str("EXPORT_ROOT", str(VAR_DIR / "exports")))
# Hold-out test split of each batch: a count of comparisons (the paper held out 1,000 of each
# batch) when >= 1, else a fraction. A count never takes more than BATCH_TEST_MAX_FRACTION of a
# batch, so a small batch still has training data.
BATCH_TEST_SIZE = env_float("BATCH_TEST_SIZE", 1000)
BATCH_TEST_MAX_FRACTION = env_float("BATCH_TEST_MAX_FRACTION", 0.1)
# Margin table of Llama 2's Table 27 used for the `margin` column: "small" or "large".
BATCH_MARGIN_TABLE = env_str("BATCH_MARGIN_TABLE", "small")
BATCH_EXPORT_CHUNK_SIZE = env_int("BATCH_EXPORT_CHUNK_SIZE", 10000, minimum=1)
# Seconds to sleep after each exported chunk: a test hook that makes an export slow enough to
# kill its worker mid-way. Keep 0 in production.
BATCH_EXPORT_PAUSE_PER_CHUNK_S = env_float("BATCH_EXPORT_PAUSE_PER_CHUNK_S", 0.0)
# An EXPORTING batch whose heartbeat is older than this lost its worker; the watchdog retries it.
BATCH_EXPORT_STALE_AFTER_S = env_int("BATCH_EXPORT_STALE_AFTER_S", 600, minimum=10)
# Written into each batch manifest; empty means `git rev-parse HEAD` of the checkout.
CODE_VERSION = env_str("CODE_VERSION", "")
CHECKPOINT_ROOT = Path(env_str("CHECKPOINT_ROOT", str(VAR_DIR / "checkpoints")))

# --- Training runs launched from the researchers' dashboard (runs app) ----------------------------
# Each run writes under CHECKPOINT_ROOT/runs/<id>/. The training worker checks on its recipe
# subprocess this often (progress, cancel requests, heartbeat).
RUN_POLL_INTERVAL_S = env_float("RUN_POLL_INTERVAL_S", 2.0)
# A RUNNING run whose heartbeat is older than this lost its worker: it is restarted, at most
# RUN_MAX_ATTEMPTS attempts in all, then marked failed.
RUN_STALE_AFTER_S = env_int("RUN_STALE_AFTER_S", 120, minimum=10)
RUN_MAX_ATTEMPTS = env_int("RUN_MAX_ATTEMPTS", 2, minimum=1)
# Seconds between SIGTERM and SIGKILL when a run is cancelled.
RUN_CANCEL_GRACE_S = env_float("RUN_CANCEL_GRACE_S", 10.0)
# Command the recipe module is run under, e.g. "accelerate launch --config_file
# training/accelerate/ddp.yaml" on a multi-GPU worker; empty: this Python (`python -m training.<recipe>`).
RUN_LAUNCHER = env_str("RUN_LAUNCHER", "")
# Beat: how often runs whose worker died, or whose enqueue failed, are looked for.
RUN_WATCHDOG_INTERVAL_S = env_int("RUN_WATCHDOG_INTERVAL_S", 120, minimum=10)

# --- Generation: keeping the annotation queue filled (generation app) ----------------------------
# Items kept READY per guideline; the fill task generates samples for waiting prompts until then.
GENERATION_READY_TARGET = env_int("GENERATION_READY_TARGET", 20, minimum=0)
# Items claimed and generated per task run (one batched request per variant).
GENERATION_BATCH_ITEMS = env_int("GENERATION_BATCH_ITEMS", 8, minimum=1)
# Sampling policy (Llama 2 §3.2.1): the two responses of a pair come from two different
# checkpoints when two or more are deployed, else from one checkpoint, and always at two
# different temperatures drawn from this list.
# (Parsed and checked by the generation app, which names this variable when a value is bad.)
GENERATION_TEMPERATURES = env_list("GENERATION_TEMPERATURES", ["0.7", "1.0", "1.2"])
GENERATION_TOP_P = env_float("GENERATION_TOP_P", 0.9)
GENERATION_MAX_TOKENS = env_int("GENERATION_MAX_TOKENS", 256, minimum=1)
# Pairs are drawn from the deployments of this many most recent checkpoints, so new data stays
# on the current model's distribution.
GENERATION_LATEST_CHECKPOINTS = env_int("GENERATION_LATEST_CHECKPOINTS", 3, minimum=1)
GENERATION_REQUEST_TIMEOUT_S = env_float("GENERATION_REQUEST_TIMEOUT_S", 120.0)
# Retries inside the client (with backoff) before a request counts as failed.
GENERATION_CLIENT_RETRIES = env_int("GENERATION_CLIENT_RETRIES", 2, minimum=0)
# Retries of the fill task (exponential backoff, at most GENERATION_RETRY_BACKOFF_MAX_S apart).
GENERATION_TASK_MAX_RETRIES = env_int("GENERATION_TASK_MAX_RETRIES", 5, minimum=0)
GENERATION_RETRY_BACKOFF_MAX_S = env_int("GENERATION_RETRY_BACKOFF_MAX_S", 300, minimum=1)
# Consecutive failures after which a deployment is marked unhealthy and left out of generation.
DEPLOYMENT_FAILURE_THRESHOLD = env_int("DEPLOYMENT_FAILURE_THRESHOLD", 3, minimum=1)
# A claim whose worker died is taken over after this long.
GENERATION_CLAIM_TTL_S = env_int("GENERATION_CLAIM_TTL_S", 900, minimum=30)
# Attempts after which an item whose request the server itself refuses is marked failed.
GENERATION_ITEM_MAX_ATTEMPTS = env_int("GENERATION_ITEM_MAX_ATTEMPTS", 3, minimum=1)
# Beat: how often the queue is topped up and deployments' health re-checked.
GENERATION_FILL_INTERVAL_S = env_int("GENERATION_FILL_INTERVAL_S", 30, minimum=1)
DEPLOYMENT_HEALTH_INTERVAL_S = env_int("DEPLOYMENT_HEALTH_INTERVAL_S", 60, minimum=1)
# Local engine: sequences generated together in one `generate` call.
LOCAL_ENGINE_BATCH_SIZE = env_int("LOCAL_ENGINE_BATCH_SIZE", 32, minimum=1)
# setup_demo_serving: a running vLLM server to use instead of the local engine (e.g.
# http://127.0.0.1:8100/v1) and the model name it serves (default: the checkpoint's path).
DEMO_VLLM_URL = env_str("DEMO_VLLM_URL", "")
DEMO_VLLM_MODEL = env_str("DEMO_VLLM_MODEL", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}


# --- Quality control (quality app) -------------------------------------------------------------
# Defaults for guideline kinds without their own row in the admin (Quality > Guideline quality).
QUALITY_GOLD_RATE = env_float("QUALITY_GOLD_RATE", 0.05)
QUALITY_TOO_FAST_MS = env_int("QUALITY_TOO_FAST_MS", 4000, minimum=0)
# A reward model "strongly disagrees" when it prefers the rejected response by at least this much.
QUALITY_RM_CONFIDENT_DIFFERENCE = env_float("QUALITY_RM_CONFIDENT_DIFFERENCE", 2.0)
# Annotator flags: gold accuracy whose 95% upper bound is below this, after this many gold answers.
QUALITY_GOLD_MIN_ACCURACY = env_float("QUALITY_GOLD_MIN_ACCURACY", 0.7)
QUALITY_MIN_GOLD_ANSWERS = env_int("QUALITY_MIN_GOLD_ANSWERS", 5, minimum=1)
# Position bias, too-fast and agreement flags need at least this many comparisons.
QUALITY_MIN_COMPARISONS = env_int("QUALITY_MIN_COMPARISONS", 20, minimum=1)
# Flag an annotator whose share of "A" is surely (95%) more than this far from one half.
QUALITY_POSITION_BIAS = env_float("QUALITY_POSITION_BIAS", 0.1)
# Initial beat intervals: scoring new comparisons with the reward models, and refreshing the flags.
QUALITY_RM_SCORE_INTERVAL_S = env_int("QUALITY_RM_SCORE_INTERVAL_S", 600, minimum=1)
QUALITY_FLAGS_INTERVAL_S = env_int("QUALITY_FLAGS_INTERVAL_S", 900, minimum=1)
