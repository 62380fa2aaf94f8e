"""Logging that names routes, never people: no link token, client address or e-mail address in any line.

The service's own messages say which endpoint and status; this filter is the second line, for what other
code writes (a server's "Exception while serving <path>", a database error quoting its parameters, a
traceback). ``configure`` puts it on every handler of a command's logging; ``GUNICORN`` does the same for
gunicorn (``deploy/systemd/petition-web.service`` loads it with ``--config python:petition.logs``).
"""

from __future__ import annotations

import logging
import re
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_PATTERNS = (
    # A link's token, in a path or a whole URL: /petitions/<slug>/confirm/<token>, …/manage/<token>.
    (re.compile(r"(/(?:confirm|manage)/)[^\s/?#\"']+"), r"\1[token]"),
    (re.compile(r"[\w.!#$%&*+=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+"), "[e-mail]"),
    (re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])"), "[address]"),
    # IPv6: eight groups, or fewer around "::" (a time such as 12:30:05 is neither).
    (re.compile(r"(?<![\w:])(?:(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}"
                r"|(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?::(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?)"
                r"(?:%\w+)?(?![\w:])"), "[address]"),
)
_KEPT = ("127.0.0.1",)  # where the service itself listens: no client's


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(lambda match, r=replacement: _keep_or(match, r), text)
    return text


def _keep_or(match: re.Match, replacement: str) -> str:
    if match.group(0) in _KEPT:
        return match.group(0)
    return match.expand(replacement)


class Redact(logging.Filter):
    """On a handler: rewrites each record's message (and its traceback) before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def configure(level: int = logging.INFO, stream=None) -> None:
    """A command's logging: one handler on the root logger, redacting."""
    logging.basicConfig(level=level, format=FORMAT, stream=stream or sys.stderr)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(existing, Redact) for existing in handler.filters):
            handler.addFilter(Redact())


# gunicorn's settings when loaded as ``--config python:petition.logs``: its own logging, through the same
# filter, and no access log (paths carry tokens, and visitors' addresses are personal data).
accesslog = None
# gunicorn 27 opens a control socket under $HOME, which the unit's read-only file system refuses (an error line
# at every start) and which two services on one host would share. Older versions ignore the name.
control_socket_disable = True
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "petition.logs.Redact"}},
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False,
                           "qualname": "gunicorn.error"},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False, "qualname": "gunicorn.access"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stderr",
                    "filters": ["redact"]},
        "error_console": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stderr",
                          "filters": ["redact"]},
    },
    "formatters": {"generic": {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s",
                               "datefmt": "[%Y-%m-%d %H:%M:%S %z]", "class": "logging.Formatter"}},
}
