"""HTTP API errors: a stable machine-readable code, a human message, a status.

Codes are part of the API (documented in docs/api.md); never change one's meaning.
"""

from __future__ import annotations


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(code: str, message: str) -> APIError:
    return APIError(400, code, message)


def not_found(message: str) -> APIError:
    return APIError(404, "not_found", message)
