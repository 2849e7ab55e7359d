"""maskroom settings: one module, driven by the environment.

Embedded default (no variables set): SQLite, the in-memory channel layer and a
Celery broker on the local file system, all under MASKROOM_HOME.
Production: DATABASE_URL (PostgreSQL), REDIS_URL (broker and channel layer),
DEBUG=false, SECRET_KEY and ALLOWED_HOSTS.
"""

from __future__ import annotations

from pathlib import Path

from backend.env import (
    ConfigError,
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_str,
    read_secret_key_file,
)

BASE_DIR = Path(__file__).resolve().parent.parent
MASKROOM_HOME = Path(env_str("MASKROOM_HOME", str(BASE_DIR / ".maskroom"))).resolve()
MEDIA_ROOT = MASKROOM_HOME / "media"
EMBEDDINGS_ROOT = MASKROOM_HOME / "embeddings"
MODELS_ROOT = MASKROOM_HOME / "models"

# Off unless asked for: Django's debug pages show code, settings and URLs.
DEBUG = env_bool("DEBUG", False)
# The key: SECRET_KEY, else the one `make run` keeps in MASKROOM_HOME
# (scripts/secret_key.py), else (DEBUG only) a fixed development key.
SECRET_KEY = env_str("SECRET_KEY") or read_secret_key_file(MASKROOM_HOME / "secret_key")
if not SECRET_KEY:
    if not DEBUG:
        raise ConfigError(
            "SECRET_KEY must be set when DEBUG is false (make run keeps one in "
            "MASKROOM_HOME/secret_key; set DEBUG=true for development)"
        )
    SECRET_KEY = "maskroom-embedded-development-key-not-for-production"
# Served over HTTPS (behind a TLS proxy): secure cookies, HSTS and a redirect
# from plain HTTP. On by default without DEBUG; `make run` serves plain HTTP
# on this machine and sets HTTPS=false.
HTTPS = env_bool("HTTPS", not DEBUG)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "channels",
    "backend.common",
    "backend.accounts",
    "backend.projects",
    "backend.images",
    "backend.annotations",
    "backend.segmentation",
    "backend.proposals",
    "backend.propagation",
    "backend.evaluations",
    "backend.work",
    "backend.quality",
    "backend.datasets",
    "backend.training",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "backend.common.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "backend.common.api_errors.ApiJsonErrorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "backend.accounts.middleware.LoginThrottleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "backend.urls"
ASGI_APPLICATION = "backend.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": MASKROOM_HOME / "db.sqlite3",
            # The worker and the web server write to the same file.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTHENTICATION_BACKENDS = ["backend.accounts.backends.ThrottledModelBackend"]
# Login throttling (backend/accounts/throttle.py), per account and per address:
# after LOGIN_FREE_FAILURES failures each one blocks for 1, 2, 4 ... s, up to
# LOGIN_MAX_DELAY_SECONDS; failures are forgotten after a quiet day.
LOGIN_FREE_FAILURES = env_int("LOGIN_FREE_FAILURES", 5)
LOGIN_MAX_DELAY_SECONDS = env_int("LOGIN_MAX_DELAY_SECONDS", 900)
LOGIN_FAILURES_FORGOTTEN_SECONDS = env_int("LOGIN_FAILURES_FORGOTTEN_SECONDS", 86_400)
# API tokens expire this many days after they were made (0: never, for scripts).
API_TOKEN_DAYS = env_int("API_TOKEN_DAYS", 0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "backend.accounts.authentication.ApiTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "backend.common.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "backend.common.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

# Uploads: the pixel limit is checked on the header before any pixel is decoded.
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 512 * 1024 * 1024)
# Days a finished export's zip is kept (0: until deleted); docs/api.md "Datasets".
EXPORT_KEEP_DAYS = env_int("EXPORT_KEEP_DAYS", 7)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 20_000 * 20_000)
# Stacks (multi-page TIFF): planes per file, and pixels over all its planes.
MAX_STACK_PLANES = env_int("MAX_STACK_PLANES", 1000)
MAX_STACK_PIXELS = env_int("MAX_STACK_PIXELS", 20_000 * 20_000)
# A stack of at most this many planes has every embedding computed at upload;
# a longer one only its first, the others when first opened.
STACK_EAGER_EMBEDDINGS = env_int("STACK_EAGER_EMBEDDINGS", 16)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# Files in one upload (or members of one zip): a CT or MR series is often
# hundreds of slices, and a series makes one stack only within one request.
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("MAX_UPLOAD_FILES", 2000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Segmentation.
# A worker computing an embedding renews its lease every third of this; a
# running embedding not renewed for this long is taken over by the next task
# (its worker died), and until then nothing computes it a second time.
EMBEDDING_LEASE_SECONDS = env_int("EMBEDDING_LEASE_SECONDS", 60)
if EMBEDDING_LEASE_SECONDS < 1:
    raise ConfigError(f"EMBEDDING_LEASE_SECONDS must be >= 1, got {EMBEDDING_LEASE_SECONDS}")
# An embedding task that meets a transient error (the database locked or gone,
# the broker unavailable) tries again this many times, waiting 1, 2, 4 ... 60 s,
# then marks the embedding failed with the reason.
EMBEDDING_TASK_RETRIES = env_int("EMBEDDING_TASK_RETRIES", 6)
# Opening an image's editor or its project's page queues again an embedding
# left pending this long since it was queued (its task lost), or running
# with its lease run out (its worker died).
EMBEDDING_STALE_SECONDS = env_int("EMBEDDING_STALE_SECONDS", 600)
EMBEDDING_CACHE_ITEMS = env_int("EMBEDDING_CACHE_ITEMS", 32)
# Bound in memory too: a tiled 4096 px image holds 26 tiles of 2 MiB.
EMBEDDING_CACHE_MB = env_int("EMBEDDING_CACHE_MB", 512)
# Decodes at once. A decode alone gets every core (24 to 29 ms instead of 33
# a click on 2 cores); decodes side by side get one thread each, which gets
# more done when a class clicks together (docs/benchmarks.md, "A class
# arrives at once"; backend/segmentation/live/session.py).
DECODE_THREADS = env_int("DECODE_THREADS", 2)
# A web process loads the decoding engines of this many of the busiest
# projects when it starts, so that nobody's first click waits for a load
# (backend/segmentation/live/warm.py); 0: load each on first use.
WARM_ENGINES = env_int("WARM_ENGINES", 2)
TORCH_THREADS = env_int("TORCH_THREADS", 0)  # 0: torch's own default
# The worker's image encoder: EMBED_DEVICE "auto" (CUDA if present), "cpu",
# "cuda", "cuda:1"; EMBED_PRECISION "auto" (bfloat16 where the device computes
# it natively: 2x on a CPU with AVX512_BF16 or AMX, masks at IoU 0.99),
# "float32" or "bfloat16"; EMBED_BATCH images per pass (0: 2 on a CPU, 8 on a GPU).
EMBED_DEVICE = env_str("EMBED_DEVICE", "auto")
EMBED_PRECISION = env_str("EMBED_PRECISION", "auto")
EMBED_BATCH = env_int("EMBED_BATCH", 0)
if EMBED_PRECISION not in ("auto", "float32", "bfloat16") or EMBED_BATCH < 0:
    raise ConfigError(
        "EMBED_PRECISION must be auto, float32 or bfloat16 and EMBED_BATCH >= 0, got "
        f"{EMBED_PRECISION!r} and {EMBED_BATCH}"
    )
DEFAULT_MODEL = env_str("DEFAULT_MODEL")  # empty: newest installed SAM, else classical

# Tiling (worker/engines/tiling.py): SAM sees 1024 px, so an image whose long
# side exceeds TILE_THRESHOLD is embedded as TILE_SIZE tiles at native
# resolution, overlapping by TILE_OVERLAP px (objects up to that size are
# always whole in one tile), plus one shrunk overview. 2048 keeps the shrink
# of an untiled image at 2x or less while a 2048 px camera frame stays one
# embedding (tiling it would take 9 + 1); set 1024 for small nuclei on a
# GPU, 0 to never tile. See docs/benchmarks.md.
TILE_THRESHOLD = env_int("TILE_THRESHOLD", 2048)
TILE_SIZE = env_int("TILE_SIZE", 1024)
TILE_OVERLAP = env_int("TILE_OVERLAP", 256)
if TILE_THRESHOLD < 0 or TILE_SIZE < 1 or not 0 <= TILE_OVERLAP < TILE_SIZE:
    raise ConfigError(
        f"tiling needs TILE_THRESHOLD >= 0 and 0 <= TILE_OVERLAP < TILE_SIZE, got "
        f"{TILE_THRESHOLD}, {TILE_OVERLAP} and {TILE_SIZE}"
    )

# Celery: Redis in production, a server-less file-system broker otherwise.
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
BROKER_DIR = MASKROOM_HOME / "broker"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = (
    {}
    if REDIS_URL
    else {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        "polling_interval": 0.25,
    }
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}

if HTTPS:
    # Whether a request came over HTTPS is the ASGI scheme, which uvicorn takes
    # from X-Forwarded-Proto only when the proxy's address is in
    # FORWARDED_ALLOW_IPS; Django does not read the header itself (that would
    # trust it from anyone who reaches the port).
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
