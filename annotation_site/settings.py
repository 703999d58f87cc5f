"""Settings of the annotation site, read from the environment with embedded defaults.

With no variable set, the site runs on SQLite under `var/` with a filesystem Celery broker, so
`make demo` needs no server started by hand. Every variable is listed in `.env.example`.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import dj_database_url

from annotation_site.env import env_bool, env_float, env_int, env_list, env_secret, env_str  # noqa: F401

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_secret(
    "SECRET_KEY", "dev-only-insecure-key-change-me-in-production", required=not DEBUG,
    why="anyone who knows the development key can forge sessions and password-reset links.",
)  # fmt: skip
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
    "axes",
    "auditlog",
    # No models of its own (it writes auditlog's): kept off the end of the list, where accounts'
    # post_migrate hook expects an app with models.
    "annotation_site.audit",
    "annotation_site.accounts",
    "annotation_site.annotation",
    "annotation_site.generation",
    "annotation_site.batches",
    "annotation_site.runs",
    "annotation_site.evaluation",
    "annotation_site.quality",
    "annotation_site.loop",
]

MIDDLEWARE = [
    # First: /healthz and /readyz answer before host checks, sessions or HTTPS redirects.
    "annotation_site.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "annotation_site.error_views.RefuseNulCharactersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Records who did what in the audit log (annotation_site/audit); after authentication.
    "annotation_site.audit.middleware.AuditlogActorMiddleware",
    # Last: turns a login locked out by axes into the lockout page.
    "axes.middleware.AxesMiddleware",
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
                "annotation_site.loop.context_processors.loop_outcomes",
            ],
        },
    },
]

# SQLite is the embedded default; DATABASE_URL (postgres://...) selects PostgreSQL, which the
# assignment queue needs for SELECT ... FOR UPDATE SKIP LOCKED under many annotators.
_database_url = env_str("DATABASE_URL", "")
if _database_url:
    DATABASES = {
        "default": dj_database_url.parse(
            _database_url,
            conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0),
            # A persistent connection that the server closed (restart, idle timeout) is replaced at
            # the start of the next request instead of failing it.
            conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", True),
        )
    }
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, checking that health without a round trip (annotation_site/db_backend).
        DATABASES["default"]["ENGINE"] = "annotation_site.db_backend"
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

# --- Login throttling (django-axes) -----------------------------------------------------------
# Both login forms (the site's and the admin's) and the API token endpoint count failed logins per
# username and client address; after AXES_FAILURE_LIMIT failures that pair is refused (HTTP 429,
# saying when to try again) until AXES_COOLOFF_MINUTES have passed since its last failure, or an
# admin deletes its row under "Axes > Access attempts". The axes backend comes first: it refuses
# a locked-out pair before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Attempts while locked out are refused without counting, so the time the message gives holds.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_CALLABLE = "annotation_site.accounts.throttling.lockout_response"
AXES_CLIENT_IP_CALLABLE = "annotation_site.accounts.throttling.client_address"
# Reverse proxies in front of the site that append the address they saw to X-Forwarded-For: the
# client is the entry the outermost one wrote (what lies left of it, the client wrote itself).
# 0: no proxy, the socket's peer is the client and the header is ignored.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)

# --- HTTPS and cookies in production ------------------------------------------------------------
# On by default when DEBUG is off (what `manage.py check --deploy` asks for); each can be turned off
# alone, e.g. SECURE_SSL_REDIRECT=false for a benchmark served over plain HTTP on loopback.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
# The TLS-terminating proxy in front of gunicorn says the request came over HTTPS in this header
# (e.g. HTTP_X_FORWARDED_PROTO); it must overwrite whatever the client sent. "none": no proxy.
_proxy_ssl_header = env_str("SECURE_PROXY_SSL_HEADER", "") or ("none" if DEBUG else "HTTP_X_FORWARDED_PROTO")
SECURE_PROXY_SSL_HEADER = None if _proxy_ssl_header.lower() == "none" else (_proxy_ssl_header, "https")

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
        # DRF's token auth, loading the role and profile in the same query (one round trip, not three).
        # First, because the first class decides the challenge: a request without credentials gets
        # 401 with "WWW-Authenticate: Token" (session auth, which has no challenge, would make it 403).
        "annotation_site.accounts.authentication.RoleTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "annotation_site.errors.api_exception_handler",
    # JSON bodies are read through a parser that caps their size and nesting depth.
    "DEFAULT_PARSER_CLASSES": [
        "annotation_site.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
# Largest request body (form or JSON, file uploads aside) in bytes; larger ones get a 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440, minimum=1024)
# Deepest nesting of arrays and objects a JSON body may have (deeper: 400).
API_JSON_MAX_DEPTH = env_int("API_JSON_MAX_DEPTH", 32, minimum=2)
# Seconds a client is told to wait (Retry-After) when the database or the task broker is down.
SERVICE_RETRY_AFTER_S = env_int("SERVICE_RETRY_AFTER_S", 5, minimum=1)
SPECTACULAR_SETTINGS = {
    "TITLE": "RLHF loop API",
    "DESCRIPTION": (
        "Annotation, batches, checkpoints, deployments and training runs of the human-feedback loop.\n\n"
        "**Authentication**: `POST /api/auth/token/` with `{\"username\", \"password\"}` returns `{\"token\"}`; send it "
        "as `Authorization: Token <token>`. The site's pages use their session cookie instead (with the CSRF token). "
        "Without credentials the API answers 401 with `WWW-Authenticate: Token`; a role that may not do an "
        "operation gets 403.\n\n"
        "**Errors** come back as `{\"error\": code, \"message\": \"what was wrong and what to do\"}` (400, 403, 404, "
        "409); a 400 from input validation adds `fields`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema maps every operation of the site: for signed-in users only (the docs page too, urls.py).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # The docs page's assets come from the installed sidecar package, not a CDN: works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two models have a `kind` choice field (checkpoints, loop steps): each enum gets its own name.
    "ENUM_NAME_OVERRIDES": {
        "CheckpointKindEnum": "annotation_site.generation.models.CheckpointKind",
        "LoopStepKindEnum": "annotation_site.loop.models.StepKind",
    },
}

# --- Annotation -------------------------------------------------------------------------------
# How long a claimed item stays reserved for its annotator before another may take it.
ASSIGNMENT_TTL_SECONDS = env_int("ASSIGNMENT_TTL_SECONDS", 30 * 60, minimum=30)
# Weekly quota of a new annotator (editable per annotator by admins).
DEFAULT_WEEKLY_QUOTA = env_int("DEFAULT_WEEKLY_QUOTA", 200, minimum=0)
# On PostgreSQL the claim, the submit and token authentication each run as one call of a database
# function (annotation_site/db_functions.py); false runs the ORM path SQLite uses, which
# bench/annotate_load.py --hot-path orm measures against them.
ANNOTATION_DB_FUNCTIONS = env_bool("ANNOTATION_DB_FUNCTIONS", True)
# How often the annotate page asks whether new items are ready while it has none to show.
ANNOTATE_POLL_MS = env_int("ANNOTATE_POLL_MS", 3000, minimum=250)
# Caps on a dialogue (API, annotators' prompts and continuations, imports): turns, characters of
# one turn (and of one response or demonstration), characters of all turns together.
DIALOGUE_MAX_TURNS = env_int("DIALOGUE_MAX_TURNS", 64, minimum=1)
DIALOGUE_MAX_TURN_CHARS = env_int("DIALOGUE_MAX_TURN_CHARS", 20_000, minimum=1)
DIALOGUE_MAX_CHARS = env_int("DIALOGUE_MAX_CHARS", 100_000, minimum=1)

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
# Launching vLLM servers for deployments goes to the "serving" queue, consumed by the serving
# workers (on the vLLM image, with the GPUs); each serving worker also consumes its own queue
# "serving.<node name>" (annotation_site/celery.py), where the stop of a server it started is sent.
CELERY_TASK_ROUTES = {
    "annotation_site.runs.tasks.*": {"queue": "training"},
    "annotation_site.generation.tasks.launch_deployment_server": {"queue": "serving"},
    # Scoring comparisons with a reward model needs torch and the model's files; so does scoring
    # the candidates of active selection.
    "annotation_site.quality.tasks.reward_model_*": {"queue": "training"},
    "annotation_site.generation.tasks.select_pairs": {"queue": "training"},
}

# --- Batches, checkpoints, serving ----------------------------------------------------------------
EXPORT_ROOT = Path(env_str("EXPORT_ROOT", str(VAR_DIR / "exports")))
# Hold-out test split of each batch: a count of comparisons (the paper held out 1,000 of each
# batch) when >= 1, a fraction when < 1, none when 0. A count never takes more than BATCH_TEST_MAX_FRACTION of a
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
# Key of the HMAC that turns a user id into the pseudonym exports name annotators by. Apart from
# SECRET_KEY so the batches can be shared without the site's key, and required in production:
# with a known key anyone could recompute which user id is behind each pseudonym.
DEV_EXPORT_PSEUDONYM_KEY = "dev-only-pseudonym-key"
EXPORT_PSEUDONYM_KEY = env_secret(
    "EXPORT_PSEUDONYM_KEY", DEV_EXPORT_PSEUDONYM_KEY, required=not DEBUG,
    why="with the development key the annotator pseudonyms in exports can be traced back to user ids "
    "(keep the key once set: pseudonyms already given out stay as they are).",
)  # fmt: skip
# Written into each batch manifest; empty means `git rev-parse HEAD` of the checkout.
CODE_VERSION = env_str("CODE_VERSION", "")
CHECKPOINT_ROOT = Path(env_str("CHECKPOINT_ROOT", str(VAR_DIR / "checkpoints")))
# A checkpoint path given on the site (register, add, admin, launch) must resolve, symlinks
# followed, into CHECKPOINT_ROOT (where runs write theirs) or one of these folders (relative ones
# from the project folder). VAR_DIR/models holds base models (the shipped CPU configs read var/models/).
CHECKPOINT_ROOTS = env_list("CHECKPOINT_ROOTS", [str(VAR_DIR / "models")])
# Accept hub ids (owner/model) as checkpoint paths: only where the workers can reach a hub.
CHECKPOINT_HUB_IDS = env_bool("CHECKPOINT_HUB_IDS", False)

# --- Training runs launched from the researchers' dashboard (runs app) ----------------------------
# Each run writes under CHECKPOINT_ROOT/runs/<id>/. The training worker checks on its recipe
# subprocess this often (progress, cancel requests, heartbeat).
RUN_POLL_INTERVAL_S = env_float("RUN_POLL_INTERVAL_S", 2.0)
# A RUNNING run whose heartbeat is older than this lost its worker: it is restarted (resuming from
# its recipe's saved state), and marked failed once RUN_MAX_ATTEMPTS attempts in a row lost their
# worker without saving a newer state.
RUN_STALE_AFTER_S = env_int("RUN_STALE_AFTER_S", 120, minimum=10)
RUN_MAX_ATTEMPTS = env_int("RUN_MAX_ATTEMPTS", 2, minimum=1)
# Seconds between SIGTERM and SIGKILL when a run is cancelled.
RUN_CANCEL_GRACE_S = env_float("RUN_CANCEL_GRACE_S", 10.0)
# Command the recipe module is run under, e.g. "accelerate launch --config_file
# training/accelerate/ddp.yaml" on a multi-GPU worker; empty: this Python (`python -m training.<recipe>`).
RUN_LAUNCHER = env_str("RUN_LAUNCHER", "")
# Folders of admin-defined accelerate configs (*.yaml) a launch may pick, beside training/accelerate/.
RUN_ACCELERATE_CONFIG_DIRS = env_list("RUN_ACCELERATE_CONFIG_DIRS", [])
# Beat: how often runs whose worker died, or whose enqueue failed, are looked for.
RUN_WATCHDOG_INTERVAL_S = env_int("RUN_WATCHDOG_INTERVAL_S", 120, minimum=10)
# Caps on what a launch may send: the key=value overrides (lines, bytes) and the resolved config.
RUN_OVERRIDES_MAX_LINES = env_int("RUN_OVERRIDES_MAX_LINES", 64, minimum=1)
RUN_OVERRIDES_MAX_BYTES = env_int("RUN_OVERRIDES_MAX_BYTES", 4096, minimum=64)
RUN_CONFIG_MAX_BYTES = env_int("RUN_CONFIG_MAX_BYTES", 65536, minimum=1024)

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
# Seed of a fill run's choices (variants, sample order, the seeds sent to the engines); empty: a
# fresh one each run. Set, it makes what a run generates reproducible (the tests set it).
GENERATION_SEED = env_int("GENERATION_SEED", 0) if env_str("GENERATION_SEED", "") else None
DEPLOYMENT_HEALTH_INTERVAL_S = env_int("DEPLOYMENT_HEALTH_INTERVAL_S", 60, minimum=1)
# Canary deployments (generation/canary.py): the defaults a canary starts with (the loop's gates
# may give their own): its share of new pairs, the votes against its baseline that decide it, and
# the win rate (ties half) it needs to be promoted; beat decides running canaries this often.
CANARY_SHARE = env_float("CANARY_SHARE", 0.2)
CANARY_MIN_VOTES = env_int("CANARY_MIN_VOTES", 200, minimum=1)
CANARY_MIN_WIN_RATE = env_float("CANARY_MIN_WIN_RATE", 0.5)
CANARY_DECIDE_INTERVAL_S = env_int("CANARY_DECIDE_INTERVAL_S", 300, minimum=10)
# Count only trusted annotators' votes for every canary (the leaderboard's "trusted" filter: the
# annotators quality control flags are left out). One switch for all canaries, as beat decides them too.
CANARY_TRUSTED_ONLY = env_bool("CANARY_TRUSTED_ONLY", False)
# Active selection (generation/selection.py): "random" (Llama 2's pairs, the default), "uncertainty"
# (the pair of K candidates whose combined reward differs least) or "disagreement" (the pair the two
# newest reward models of the guideline disagree on most), for every guideline or one of them
# (empty: SELECTION_POLICY); K candidates per prompt; the share of prompts that stays random so the
# data keeps the paper's distribution. The scoring runs on the training worker (it has the RMs).
SELECTION_POLICY = env_str("SELECTION_POLICY", "random")
SELECTION_POLICY_HELPFULNESS = env_str("SELECTION_POLICY_HELPFULNESS", "")
SELECTION_POLICY_SAFETY = env_str("SELECTION_POLICY_SAFETY", "")
SELECTION_CANDIDATES = env_int("SELECTION_CANDIDATES", 4, minimum=2)
SELECTION_RANDOM_SHARE = env_float("SELECTION_RANDOM_SHARE", 0.3)
# Candidates wait this long for the training worker's choice (it may be busy with a training run);
# then the next fill queues a random pair of them, noted on the item.
SELECTION_WAIT_S = env_int("SELECTION_WAIT_S", 3600, minimum=30)
# Hosts and networks a deployment's endpoint URL may point at (names, addresses, CIDR networks):
# loopback (servers launched outside docker) and the compose stack's serving worker. Link-local and
# cloud metadata addresses are refused whatever this says (serving/endpoints.py).
SERVING_ALLOWED_HOSTS = env_list("SERVING_ALLOWED_HOSTS", ["localhost", "127.0.0.0/8", "::1", "serving-worker"])
# Local engine: sequences generated together in one `generate` call.
LOCAL_ENGINE_BATCH_SIZE = env_int("LOCAL_ENGINE_BATCH_SIZE", 32, minimum=1)
# Serving workers (launched vLLM servers, one per deployment): the interface servers bind, the
# host name other machines reach them at (compose: the service's name), the ports they take, the
# GPUs of this worker's machine handed out to servers (empty: no pinning, e.g. CPU), seconds to
# wait for a server to answer, and GPU memory fraction per server (empty: vLLM's default).
SERVING_BIND_HOST = env_str("SERVING_BIND_HOST", "127.0.0.1")
SERVING_ADVERTISE_HOST = env_str("SERVING_ADVERTISE_HOST", "127.0.0.1")
SERVING_PORT_FIRST = env_int("SERVING_PORT_FIRST", 8100, minimum=1)
SERVING_PORT_LAST = env_int("SERVING_PORT_LAST", 8199, minimum=1)
SERVING_GPUS = env_list("SERVING_GPUS", [])
SERVING_START_TIMEOUT_S = env_float("SERVING_START_TIMEOUT_S", 900.0)
SERVING_MAX_MODEL_LEN = env_int("SERVING_MAX_MODEL_LEN", 4096, minimum=1)
SERVING_GPU_MEMORY_UTILIZATION = env_float("SERVING_GPU_MEMORY_UTILIZATION", 0.0) or None
# setup_demo_serving: a running vLLM server to use instead of the local engine (e.g.
# http://127.0.0.1:8100/v1) and the model name it serves (default: the checkpoint's path).
DEMO_VLLM_URL = env_str("DEMO_VLLM_URL", "")
DEMO_VLLM_MODEL = env_str("DEMO_VLLM_MODEL", "")
# A notice shown to every user after they log in (make demo sets it: the demo model is tiny);
# empty: none.
DEMO_NOTICE = env_str("DEMO_NOTICE", "")

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


# --- The weekly loop (loop app) -----------------------------------------------------------------
# Beat's tick: start the iterations a batch's export triggers, advance running ones, poll canaries.
LOOP_TICK_INTERVAL_S = env_int("LOOP_TICK_INTERVAL_S", 60, minimum=1)
# Mail of each iteration's outcome to researchers and admins; empty EMAIL_HOST: no mail (the outcome
# is on the loop's pages and in the log).
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "rlhf-loop@localhost")
