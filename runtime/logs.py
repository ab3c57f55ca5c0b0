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
    """Send runtime and uvicorn logs to stderr and a rotating logs_dir/server.log."""
    archive = logs_dir / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    path = logs_dir / "server.log"
    file_handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
    )
    file_handler.namer = lambda name: str(archive / Path(name).name)
    formatter = logging.Formatter(FORMAT, DATE_FORMAT)
    console = logging.StreamHandler(sys.stderr)
    for handler in (file_handler, console):
        handler.setFormatter(formatter)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [file_handler, console]
        logger.setLevel(level.upper())
        logger.propagate = False
    return path
