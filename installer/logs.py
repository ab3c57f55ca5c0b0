"""File logging with rotation into ``logs_dir`` (installer.log); the console stays clean."""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler

from llm_installer.settings import Settings, parse_size

LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


def setup_logging(settings: Settings) -> None:
    """Send the ``llm_installer`` logger to logs_dir/installer.log, rotated at log_rotation."""
    logger = logging.getLogger("llm_installer")
    logger.setLevel(settings.log_level)
    if any(isinstance(h, RotatingFileHandler) for h in logger.handlers):
        return
    try:
        settings.logs_path.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(
            settings.logs_path / "installer.log",
            maxBytes=parse_size(settings.log_rotation),
            backupCount=5,
        )
    except OSError:
        return  # an unwritable log folder must never stop a command
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
    logger.propagate = False
