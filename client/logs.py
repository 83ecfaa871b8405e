"""Log output for every tlog process: human text or one JSON object per line.

JSON lines carry the time (RFC 3339, UTC), level, logger, message, the process, and the id of
the HTTP request being handled (`request_id`, also sent back as `X-Request-Id`), so a log
shipper can join a client's complaint to the server's lines without parsing text.
"""

from __future__ import annotations

import contextvars
import datetime
import logging
import sys
from collections.abc import Callable

import orjson

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

FORMATS = ("text", "json")
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": self.process,
            "pid": record.process,
        }
        rid = request_id.get()
        if rid:
            doc["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}


class _TextWithRequest(logging.Formatter):
    """One event, one line: control characters in the message (which may quote a client's
    path, a witness's answer or an exception) are escaped, so no one can forge a line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = record.message.translate(_CONTROL)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = request_id.get()
        return f"{line} [request {rid}]" if rid else line


def announcer(fmt: str, logger: str) -> Callable[[str], None]:
    """Where start-up lines (key, URL, paths) go: printed for a human with text logs, one log
    record each with JSON logs, so a log shipper sees nothing but JSON."""
    return print if fmt == "text" else logging.getLogger(logger).info


def setup_logging(fmt: str, process: str, level: int = logging.INFO) -> None:
    """Configure the root logger once per process (worker processes call it again)."""
    if fmt not in FORMATS:
        raise ValueError(f"log_format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter(process) if fmt == "json" else _TextWithRequest(_TEXT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    # uvicorn's own loggers go through the root handler, in the same format.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
