"""The LOGGING setting: one console handler, JSON lines or plain text (common/logging.py)."""


def logging_config(*, level: str, fmt: str) -> dict:
    if fmt not in {"json", "plain"}:
        fmt = "plain"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "common.logging.json_formatter"},
            "plain": {"()": "common.logging.plain_formatter"},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": fmt}},
        "root": {"handlers": ["console"], "level": level},
        # SQL never reaches the log, whatever LOG_LEVEL says (its parameters are ciphertext, but still).
        "loggers": {"django.db.backends": {"level": "WARNING", "propagate": True}},
    }
