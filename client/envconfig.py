"""Settings from environment variables (`TLOG_<KEY>`, `WITNESS_<KEY>`, `MONITOR_<KEY>`), typed
like the TOML file's: what containers and systemd units set per instance."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

# Kubernetes gives every pod variables for every Service in its namespace: a Service named
# `tlog` makes TLOG_PORT=tcp://10.0.0.5:8080, TLOG_SERVICE_HOST=10.0.0.5 and so on. Those
# names are no settings; they are skipped when their values look like what Kubernetes sets.
_SERVICE_LINK_NAME = re.compile(
    r"(?:.+_)?(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT(?:_\d+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?)?)")
_SERVICE_LINK_VALUE = re.compile(r"(?:tcp|udp|sctp)://[0-9a-fA-F.:\[\]]+:\d+|[0-9a-fA-F.:]+|TCP|UDP|SCTP")


def is_service_link(key: str, value: str) -> bool:
    return bool(_SERVICE_LINK_NAME.fullmatch(key) and _SERVICE_LINK_VALUE.fullmatch(value))


def env_settings(env: Mapping[str, str], prefix: str, types: Mapping[str, Any],
                 error: Callable[[str], Exception], ignored: frozenset[str] = frozenset()) -> dict[str, Any]:
    """{key: value} for every `<prefix><KEY>` variable; an unknown key or a value of the wrong
    type raises `error` naming the variable. Booleans are `true`/`false`, numbers decimal,
    lists comma-separated."""
    out: dict[str, Any] = {}
    for name, raw in sorted(env.items()):
        if not name.startswith(prefix) or name in ignored:
            continue
        key = name[len(prefix):].lower()
        want = types.get(key)
        if want is None and is_service_link(name[len(prefix):], raw):
            continue
        if want is None:
            raise error(f"{name}: no such setting (see docs/configuration.md)")
        if want is bool:
            if raw not in ("true", "false"):
                raise error(f"{name}: expected true or false, got {raw!r}")
            out[key] = raw == "true"
        elif want is list:
            out[key] = [item for item in raw.split(",") if item]
        elif want is int or want is float or want == (int, float):
            try:
                out[key] = int(raw) if want is int else float(raw)
            except ValueError:
                raise error(f"{name}: expected a number, got {raw!r}") from None
        else:
            out[key] = raw
    return out
