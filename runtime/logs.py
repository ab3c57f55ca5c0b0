"""Server logging: `logs/server.log` in the seed's format, rotated into `logs/archive/`."""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
LOGGERS = ("llm_runtime", "uvicorn", "uvicorn.error", "uvicorn.access")


SECRET_PARAMS = re.compile(r"((?:api_key|access_token|token|key)=)[^&\s\"']+", re.IGNORECASE)


class RedactSecrets(logging.Filter):
    """Masks secrets in every record: `api_key=...` in URLs and the given secret values."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if len(s) >= 4)  # a 1-letter key: mangled logs

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = SECRET_PARAMS.sub(r"\1***", message)
        for secret in self.secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def setup_logging(logs_dir: Path, level: str = "info", secrets: tuple[str, ...] = ()) -> Path:
    """Send runtime and uvicorn logs to stderr and a rotating logs_dir/server.log.

    An unwritable logs_dir (a mount owned by another user) costs the file, never the server.
    """
    archive = logs_dir / "archive"
    path = logs_dir / "server.log"
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    try:
        archive.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
        )
        file_handler.namer = lambda name: str(archive / Path(name).name)
        handlers.append(file_handler)
    except OSError as error:
        print(
            f"Warning: cannot write logs to {logs_dir} ({error}); logging to stderr only",
            file=sys.stderr,
        )
    formatter = logging.Formatter(FORMAT, DATE_FORMAT)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RedactSecrets(secrets))
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = list(handlers)
        logger.setLevel(level.upper())
        logger.propagate = False
    return path
