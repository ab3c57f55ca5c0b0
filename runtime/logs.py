"""Server logging: `logs/server.log` in the seed's format, rotated into `logs/archive/`."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
LOGGERS = ("llm_runtime", "uvicorn", "uvicorn.error", "uvicorn.access")


def setup_logging(logs_dir: Path, level: str = "info") -> Path:
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
        print(f"Warning: cannot write logs to {logs_dir} ({error}); logging to stderr only", file=sys.stderr)
    formatter = logging.Formatter(FORMAT, DATE_FORMAT)
    for handler in handlers:
        handler.setFormatter(formatter)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = list(handlers)
        logger.setLevel(level.upper())
        logger.propagate = False
    return path
