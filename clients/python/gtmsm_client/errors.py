"""Typed exceptions carrying the problem+json (RFC 9457) fields gtmsmd replies with.

Every error reply of gtmsmd is ``application/problem+json``::

    {"type": "urn:gtmsm:problem:gap", "title": "Conflict", "status": 409,
     "detail": "t=40 leaves a gap; the next t is 12", "instance": "/v1/sessions/a/observations",
     "request_id": "...", "expected_t": 12, "accepted": 0, "duplicates": 0, "steps": 12}

``GtmsmError`` holds those fields; one subclass per class of error lets callers catch what
they can handle (``except Conflict as e: resume_at(e.expected_t)``).
"""
from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional, Tuple, Type

PROBLEM_PREFIX = "urn:gtmsm:problem:"


class GtmsmError(Exception):
    """An error reply of gtmsmd (or a reply that is not what the API promises).

    Attributes: ``status`` (HTTP status, ``None`` for transport errors), ``type`` (the problem
    URI), ``slug`` (its last part, e.g. ``"gap"``), ``title``, ``detail`` (what was wrong and
    what was expected), ``instance`` (the request path), ``request_id``, ``problem`` (the whole
    problem body as a dict), ``headers`` (the reply's headers, lower-case keys), and the
    extension members when present: ``expected_t``, ``accepted``, ``duplicates``, ``steps``,
    ``limit``; ``attempts`` is how many tries the client made.
    """

    def __init__(self, status: Optional[int], type: str = "about:blank", title: str = "",
                 detail: str = "", problem: Optional[Mapping[str, Any]] = None,
                 headers: Optional[Mapping[str, str]] = None):
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.problem: Dict[str, Any] = dict(problem or {})
        self.headers: Dict[str, str] = dict(headers or {})
        self.instance: Optional[str] = self.problem.get("instance")
        self.request_id: Optional[str] = (self.problem.get("request_id")
                                          or self.headers.get("x-request-id"))
        self.served_by: Optional[str] = self.headers.get("x-served-by")
        self.expected_t: Optional[int] = _int_or_none(self.problem.get("expected_t"))
        self.accepted: Optional[int] = _int_or_none(self.problem.get("accepted"))
        self.duplicates: Optional[int] = _int_or_none(self.problem.get("duplicates"))
        self.steps: Optional[int] = _int_or_none(self.problem.get("steps"))
        self.limit: Optional[int] = _int_or_none(self.problem.get("limit"))
        self.attempts = 1  # tries the client made (set by Client.request)
        super().__init__(str(self))

    @property
    def slug(self) -> str:
        """The problem type without its ``urn:gtmsm:problem:`` prefix (``"gap"``, ...)."""
        t = self.type or ""
        return t[len(PROBLEM_PREFIX):] if t.startswith(PROBLEM_PREFIX) else t

    def __str__(self) -> str:
        head = f"{self.status} {self.slug}" if self.status is not None else self.slug
        return f"{head}: {self.detail}" if self.detail else head

    def __reduce__(self) -> Tuple[Any, ...]:  # picklable across processes
        return (_rebuild, (type(self), self.status, self.type, self.title, self.detail,
                           self.problem, self.headers))


def _rebuild(cls: Type["GtmsmError"], status: Optional[int], type_: str, title: str, detail: str,
             problem: Optional[Mapping[str, Any]], headers: Optional[Mapping[str, str]]
             ) -> "GtmsmError":
    e = GtmsmError.__new__(cls)
    GtmsmError.__init__(e, status, type_, title, detail, problem, headers)
    return e


def _int_or_none(v: Any) -> Optional[int]:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


class BadRequest(GtmsmError):
    """400: malformed JSON/NDJSON/base64/PNG, a missing field, a bad id."""


class Unauthorized(GtmsmError):
    """401: a missing or unknown API key."""


class NotFound(GtmsmError):
    """404: unknown session (``session-not-found``), model (``model-not-found``) or path."""


class MethodNotAllowed(GtmsmError):
    """405: the path exists but not with this method."""


class Conflict(GtmsmError):
    """409: the request does not fit the stored state.

    ``gap`` and ``content-mismatch`` carry ``expected_t``, the next ``t`` the session expects;
    ``model-mismatch``, ``model-version`` and ``session-exists`` do not.
    """


class PayloadTooLarge(GtmsmError):
    """413: the body is over the daemon's ``--max-body`` (``limit`` in bytes)."""


class UnsupportedMediaType(GtmsmError):
    """415: a Content-Type this path does not accept."""


class Unprocessable(GtmsmError):
    """422: well formed but not acceptable for this model or the limits (``frame-shape``,
    ``unknown-action``, ``too-many-actions``, ``too-many-frames``, ``memory-full``, ``bad-dump``)."""


class ServerError(GtmsmError):
    """5xx other than 503: the daemon (or a proxy in front of it) failed."""


class Unavailable(ServerError):
    """503: overloaded or not ready. ``retry_after`` is the ``Retry-After`` header in seconds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after: Optional[float] = _parse_retry_after(self.headers.get("retry-after"))


class TransportError(GtmsmError):
    """No reply: the connection failed (refused, reset, timed out) on every attempt.
    ``status`` is ``None``; ``__cause__`` is the last ``OSError``/``http.client`` error."""

    def __init__(self, detail: str):
        super().__init__(None, "transport-error", "Transport error", detail)


def _parse_retry_after(v: Optional[str]) -> Optional[float]:
    if v is None:
        return None
    try:
        return max(0.0, float(v.strip()))
    except ValueError:
        return None  # an HTTP date: not sent by gtmsmd; the caller's backoff applies


_BY_STATUS = {400: BadRequest, 401: Unauthorized, 404: NotFound, 405: MethodNotAllowed,
              409: Conflict, 413: PayloadTooLarge, 415: UnsupportedMediaType, 422: Unprocessable,
              503: Unavailable}


def error_from_reply(status: int, headers: Mapping[str, str], body: bytes) -> GtmsmError:
    """The typed exception for an error reply; a reply that is not problem+json (e.g. a load
    balancer's HTML page) still gives the right class, with the start of the body as detail."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else GtmsmError)
    problem: Dict[str, Any] = {}
    try:
        j = json.loads(body.decode("utf-8")) if body else None
        if isinstance(j, dict):
            problem = j
    except (UnicodeDecodeError, ValueError):
        pass
    if problem:
        return cls(status, str(problem.get("type", "about:blank")), str(problem.get("title", "")),
                   str(problem.get("detail", "")), problem, headers)
    text = body[:300].decode("utf-8", "replace").strip()
    return cls(status, "about:blank", "", f"HTTP {status}" + (f": {text}" if text else ""), {}, headers)
