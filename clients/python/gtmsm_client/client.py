"""The gtmsmd client: models, sessions, observations, predictions, export/import.

Standard library only; numpy is optional: with it installed, ``arrays()`` / ``array()`` /
``state_array()`` give numpy arrays, without it ``png.Image`` tuples (pixels as bytes) and lists.
One ``Client`` keeps one keep-alive connection per thread, so it may be shared between threads;
``last_response`` (and ``last_served_by`` / ``last_request_id``) tell what answered the most
recent call.
"""
from __future__ import annotations

import base64
import collections.abc as cabc
import http.client
import io
import json
import os
import random
import threading
import time
import urllib.parse
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Mapping,
                    Optional, Sequence, Tuple, Type, Union)

try:  # optional: frames and states as arrays
    import numpy as _np
except ImportError:  # plain bytes and lists instead
    _np = None  # type: ignore[assignment]

if TYPE_CHECKING:
    import numpy

from . import png as pngmod
from .errors import (Conflict, GtmsmError, NotFound, PayloadTooLarge, TransportError, Unavailable,
                     Unprocessable, error_from_reply)

DEFAULT_URL = "http://127.0.0.1:8080"
NDJSON = "application/x-ndjson"
JSON = "application/json"
PNG = "image/png"

SessionRef = Union[str, Mapping[str, Any]]
Actions = Union[str, Sequence[Union[str, int]]]
Observations = Union[str, "os.PathLike[str]", bytes, Iterable[Any]]

__all__ = ["Client", "Reply", "ObserveResult", "PredictedFrame", "Prediction", "Strip",
           "DEFAULT_URL", "new_session_id", "have_numpy"]

# With numpy: an array; without: the plain form (png.Image, lists of floats).
FrameArray = Union["numpy.ndarray", pngmod.Image]
FramesArray = Union["numpy.ndarray", List[pngmod.Image]]
StatesArray = Union["numpy.ndarray", List[List[float]]]


def new_session_id() -> str:
    """A client-generated session id (uuid4 as 32 hex digits), valid for PUT /v1/sessions/{id}."""
    return uuid.uuid4().hex


def have_numpy() -> bool:
    """Whether numpy was importable: ``array()``, ``arrays()`` and ``state_array()`` give numpy
    arrays when it is, plain ``png.Image`` tuples and lists when not."""
    return _np is not None


def _image_array(img: pngmod.Image) -> FrameArray:
    """(H, W, C) uint8 with numpy, else the Image itself."""
    if _np is None:
        return img
    return _np.frombuffer(img.pixels, dtype=_np.uint8).reshape(img.height, img.width, img.channels)


def _images_array(imgs: List[pngmod.Image]) -> FramesArray:
    """(T, H, W, C) uint8 with numpy, else the list of Images."""
    if _np is None:
        return imgs
    if not imgs:
        return _np.zeros((0, 0, 0, 0), dtype=_np.uint8)
    return _np.stack([_np.frombuffer(i.pixels, dtype=_np.uint8).reshape(i.height, i.width, i.channels)
                      for i in imgs])


# ---- results -----------------------------------------------------------------------------

@dataclass
class Reply:
    """One HTTP reply: ``status``, ``headers`` (lower-case keys), ``body`` (bytes; empty for
    streamed replies), and what served it. ``attempts`` counts the tries it took."""
    status: int
    headers: Dict[str, str]
    body: bytes = b""
    attempts: int = 1

    @property
    def request_id(self) -> Optional[str]:
        return self.headers.get("x-request-id")

    @property
    def served_by(self) -> Optional[str]:
        return self.headers.get("x-served-by")

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


@dataclass
class ObserveResult:
    """What ``Client.observe`` did: observations ``accepted`` (new) and ``duplicates`` (already
    stored, identical) over all its requests, the session's ``steps`` (the next ``t``) after the
    last one, and how many HTTP ``requests``, ``retries`` (transport errors, 503) and
    ``resumes`` (a 409 gap or a size limit answered by continuing at the ``t`` the daemon
    named) it took; with ``observe(..., states=True)``, ``states``: the state each accepted
    observation was stored under, in order (the inferred trajectory: from the actions, or
    corrected by landmarks)."""
    accepted: int = 0
    duplicates: int = 0
    steps: Optional[int] = None
    requests: int = 0
    retries: int = 0
    resumes: int = 0
    states: List[List[float]] = field(default_factory=list)


@dataclass
class PredictedFrame:
    index: int
    action: str
    png: bytes
    state: List[float]

    def image(self) -> pngmod.Image:
        return pngmod.decode(self.png)

    def array(self) -> FrameArray:
        """The pixels: numpy (H, W, C) uint8 when numpy is installed, else ``image()``."""
        return _image_array(self.image())


@dataclass
class Prediction:
    """Predicted frames (PNG bytes each) with the state the model was in for each, and the
    session ``steps`` the prediction started from (JSON replies only)."""
    frames: List[PredictedFrame]
    steps: Optional[int] = None

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def pngs(self) -> List[bytes]:
        return [f.png for f in self.frames]

    @property
    def states(self) -> List[List[float]]:
        return [f.state for f in self.frames]

    @property
    def actions(self) -> List[str]:
        return [f.action for f in self.frames]

    def arrays(self) -> FramesArray:
        """Every frame's pixels: numpy (T, H, W, C) uint8 when numpy is installed, else a list
        of ``png.Image`` (pixels as bytes)."""
        return _images_array([f.image() for f in self.frames])

    def state_array(self) -> StatesArray:
        """The state of each frame: numpy (T, S) float32 when numpy is installed (the daemon's
        float32 values exactly), else a list of lists of floats."""
        if _np is None:
            return self.states
        return _np.array(self.states, dtype=_np.float32).reshape(len(self.frames), -1)

    def save_frames(self, directory: str, prefix: str = "frame") -> List[str]:
        """Writes ``prefix-0000.png``, ... into ``directory`` (created); returns the paths."""
        os.makedirs(directory, exist_ok=True)
        paths = []
        for f in self.frames:
            p = os.path.join(directory, f"{prefix}-{f.index:04d}.png")
            _write(p, f.png)
            paths.append(p)
        return paths

    def strip(self, scale: int = 1) -> bytes:
        """The frames left to right as one PNG (like ``predict_strip``, composed here)."""
        imgs = [pngmod.decode(f.png) for f in self.frames]
        return pngmod.encode(pngmod.grid([imgs], k=scale, gap=0))

    def save_strip(self, path: str, scale: int = 1) -> str:
        _write(path, self.strip(scale))
        return path


@dataclass
class Strip:
    """A film strip as gtmsmd sends it (``Accept: image/png``): ``frame_count`` frames of
    ``frame_width`` pixels, left to right, in one PNG."""
    png: bytes
    frame_count: int
    frame_width: int
    reply: Optional[Reply] = field(default=None, repr=False)

    def save(self, path: str) -> str:
        _write(path, self.png)
        return path

    def frames(self) -> List[bytes]:
        """Each frame as its own PNG."""
        return [pngmod.encode(f) for f in pngmod.split_strip(pngmod.decode(self.png), self.frame_count)]

    def arrays(self) -> FramesArray:
        """Each frame's pixels: numpy (T, H, W, C) uint8 when numpy is installed, else a list of
        ``png.Image``."""
        return _images_array(pngmod.split_strip(pngmod.decode(self.png), self.frame_count))


def _write(path: str, data: bytes) -> None:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# ---- observations as (t, NDJSON line) ------------------------------------------------------

def _obs_line(o: Any, where: str) -> Tuple[int, bytes]:
    """(t, one NDJSON line) from a dict, a JSON line (str/bytes)."""
    if isinstance(o, (bytes, bytearray)):
        o = bytes(o).strip()
        if not o:
            return -1, b""
        d = json.loads(o.decode("utf-8"))
        line = o
    elif isinstance(o, str):
        s = o.strip()
        if not s:
            return -1, b""
        d = json.loads(s)
        line = s.encode("utf-8")
    elif isinstance(o, cabc.Mapping):
        d = o
        frame = d.get("frame")
        if isinstance(frame, (bytes, bytearray)):  # raw PNG bytes
            frame = base64.b64encode(bytes(frame)).decode("ascii")
        line = json.dumps({"t": d.get("t"), "action": d.get("action"), "frame": frame},
                          separators=(",", ":")).encode("utf-8")
    else:
        raise TypeError(f"{where}: an observation must be a dict or an NDJSON line, not "
                        f"{type(o).__name__}")
    t = d.get("t") if isinstance(d, cabc.Mapping) else None
    if not isinstance(t, int) or isinstance(t, bool) or t < 0:
        raise ValueError(f"{where}: every observation needs an integer 't' >= 0")
    return t, line + b"\n"


class _Source:
    """Observations from a path, NDJSON bytes, a file object or an iterable; ``lines(start)``
    yields (t, line) with t >= start. Paths, bytes and sequences can be read again (to resume
    before the current window); file objects and iterators once."""

    def __init__(self, obj: Any):
        self.obj = obj
        self.rereadable = isinstance(obj, (str, os.PathLike, bytes, bytearray, list, tuple))
        self.used = False

    def _raw(self) -> Iterator[Any]:
        o = self.obj
        if isinstance(o, (str, os.PathLike)):
            with open(o, "rb") as f:
                yield from f
        elif isinstance(o, (bytes, bytearray)):
            yield from io.BytesIO(bytes(o))
        else:
            if not self.rereadable and self.used:
                raise ValueError("these observations were already consumed")
            self.used = True
            yield from o

    def lines(self, start: int = 0) -> Iterator[Tuple[int, bytes]]:
        for n, o in enumerate(self._raw()):
            t, line = _obs_line(o, f"observation {n}")
            if line and t >= start:
                yield t, line


def _take(it: Iterator[Tuple[int, bytes]], n: int) -> List[Tuple[int, bytes]]:
    out = []
    for item in it:
        out.append(item)
        if len(out) == n:
            break
    return out


def _actions(actions: Actions) -> List[Union[str, int]]:
    if isinstance(actions, str):
        out: List[Union[str, int]] = []
        for a in actions.split(","):
            a = a.strip()
            if a:
                out.append(int(a) if a.isdigit() else a)
        return out
    return list(actions)


def _sid(session: SessionRef) -> str:
    if isinstance(session, cabc.Mapping):
        session = session["id"]
    if not isinstance(session, str) or not session:
        raise ValueError("a session is its id (a non-empty string) or a session dict")
    return session


def _q(s: str) -> str:
    return urllib.parse.quote(s, safe="")


# ---- the client ----------------------------------------------------------------------------

class Client:
    """A gtmsmd client.

    ``base_url`` is ``http://host:port`` (``https://`` works too, and a path prefix when the
    daemon sits behind a proxy under one). ``api_key`` is sent as ``Authorization: Bearer``.
    ``timeout`` bounds each socket operation in seconds. ``retries`` is how many more attempts a
    call makes after a connection error or a 503 (waiting ``Retry-After``, or an exponential
    backoff from ``backoff`` seconds up to ``max_backoff``, with jitter). Calls that are not
    idempotent (POST /v1/sessions, import) are retried only when the daemon surely did not act
    (503, connection refused, a kept-alive connection found closed before the request went out).
    """

    def __init__(self, base_url: str = DEFAULT_URL, api_key: Optional[str] = None,
                 timeout: float = 60.0, retries: int = 3, backoff: float = 0.2,
                 max_backoff: float = 10.0, user_agent: str = "gtmsm-client-python"):
        u = urllib.parse.urlsplit(base_url if "://" in base_url else "http://" + base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port][/prefix], not {base_url!r}")
        self.base_url = base_url
        self._https = u.scheme == "https"
        self._host = u.hostname
        self._port = u.port or (443 if self._https else 80)
        self._prefix = u.path.rstrip("/")
        self.api_key = api_key.strip() if api_key else None
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.user_agent = user_agent
        self.last_response: Optional[Reply] = None
        self._local = threading.local()

    # -- context and connections --
    def __enter__(self) -> "Client":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.close()

    def close(self) -> None:
        """Closes this thread's kept-alive connection (others close when their threads end)."""
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    @property
    def last_served_by(self) -> Optional[str]:
        """``X-Served-By`` of the last reply (the replica that answered)."""
        return self.last_response.served_by if self.last_response else None

    @property
    def last_request_id(self) -> Optional[str]:
        """``X-Request-Id`` of the last reply (also in the daemon's log lines)."""
        return self.last_response.request_id if self.last_response else None

    def _new_conn(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _delay(self, attempt: int, err: Optional[GtmsmError]) -> float:
        if isinstance(err, Unavailable) and err.retry_after is not None:
            return min(err.retry_after, 60.0)  # the daemon says when
        d = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return d * (0.5 + random.random() / 2)

    # -- one HTTP exchange, with retries --
    def request(self, method: str, path: str,
                body: Union[None, bytes, Callable[[], Iterable[bytes]]] = None,
                content_type: Optional[str] = None, accept: Optional[str] = None,
                headers: Optional[Mapping[str, str]] = None, idempotent: bool = True,
                stream: bool = False, retries: Optional[int] = None
                ) -> Tuple[Reply, Optional["_Stream"]]:
        """Sends one request (``body`` bytes, or a callable giving an iterable of byte pieces sent
        with chunked transfer encoding, called again on each retry) and returns the reply; error
        replies raise the typed ``GtmsmError``. With ``stream`` the reply body is left unread:
        the second value is the open response (``readline()``, ``read()``; on its own
        connection: ``close()`` it when done).
        The raised error's ``attempts`` says how many tries were made."""
        rid = uuid.uuid4().hex[:16]
        retries = self.retries if retries is None else max(0, int(retries))
        attempt = 0
        stale_replayed = False
        while True:
            attempt += 1
            err: Optional[GtmsmError] = None
            retry_ok = True
            try:
                reply, resp = self._exchange(method, path, body, content_type, accept, headers,
                                             rid, stream)
                reply.attempts = attempt
                self.last_response = reply
                if reply.status < 400:
                    return reply, resp
                err = error_from_reply(reply.status, reply.headers, reply.body)
                if not isinstance(err, Unavailable):
                    err.attempts = attempt
                    raise err
            except _Transport as t:
                if t.stale and not stale_replayed:
                    # a kept-alive connection the daemon had closed while idle: the request did
                    # not reach it; send it once more on a new connection, not counted as a retry
                    stale_replayed = True
                    attempt -= 1
                    continue
                err = TransportError(f"{method} {self._prefix}{path}: {t.cause!r}")
                err.__cause__ = t.cause
                retry_ok = idempotent or t.not_sent
            if attempt > retries or not retry_ok:
                err.attempts = attempt
                raise err
            time.sleep(self._delay(attempt, err))

    def _exchange(self, method: str, path: str,
                  body: Union[None, bytes, Callable[[], Iterable[bytes]]],
                  content_type: Optional[str], accept: Optional[str],
                  headers: Optional[Mapping[str, str]], rid: str, stream: bool
                  ) -> Tuple[Reply, Optional[_Stream]]:
        conn = None if stream else getattr(self._local, "conn", None)
        reused = conn is not None and conn.sock is not None
        if conn is None:
            conn = self._new_conn()
        if not stream:
            self._local.conn = conn
        sent_all = False
        try:
            if conn.sock is None:
                try:
                    conn.connect()
                except (OSError, http.client.HTTPException) as e:
                    raise _Transport(e, not_sent=True) from e
            send_error: Optional[BaseException] = None
            try:
                conn.putrequest(method, self._prefix + path, skip_accept_encoding=True)
                conn.putheader("User-Agent", self.user_agent)
                conn.putheader("X-Request-Id", rid)
                if accept:
                    conn.putheader("Accept", accept)
                if self.api_key:
                    conn.putheader("Authorization", "Bearer " + self.api_key)
                for k, v in (headers or {}).items():
                    conn.putheader(k, v)
                if callable(body):
                    conn.putheader("Content-Type", content_type or NDJSON)
                    conn.putheader("Transfer-Encoding", "chunked")
                    conn.endheaders()
                    for piece in body():
                        if piece:
                            conn.send(b"%x\r\n" % len(piece) + bytes(piece) + b"\r\n")
                    conn.send(b"0\r\n\r\n")
                else:
                    if body is not None:
                        conn.putheader("Content-Type", content_type or JSON)
                        conn.putheader("Content-Length", str(len(body)))
                    elif method in ("POST", "PUT"):
                        conn.putheader("Content-Length", "0")
                    conn.endheaders(body)
                sent_all = True
            except OSError as e:  # the daemon may have answered early (an error) and closed
                send_error = e
            try:
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                cause = send_error or e
                # a kept-alive connection the daemon had closed: the request never arrived
                stale = reused and isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError,
                                                  BrokenPipeError))
                raise _Transport(cause, not_sent=stale, stale=stale) from e
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            if stream and resp.status < 400:
                return Reply(resp.status, hdrs), _Stream(conn, resp)
            try:
                data = resp.read()
            except (OSError, http.client.HTTPException) as e:
                raise _Transport(e) from e
            if not sent_all or resp.will_close:
                conn.close()
            if stream:
                conn.close()
            return Reply(resp.status, hdrs, data), None
        except BaseException:
            conn.close()
            raise

    def _json(self, method: str, path: str, payload: Any = None, idempotent: bool = True,
              headers: Optional[Mapping[str, str]] = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        reply, _ = self.request(method, path, body, JSON if body is not None else None, JSON,
                                headers, idempotent)
        return reply.json()

    # -- health --
    def live(self) -> bool:
        """GET /v2/health/live: the process answers."""
        try:
            self._json("GET", "/v2/health/live")
            return True
        except GtmsmError:
            return False

    def ready(self) -> bool:
        """GET /v2/health/ready (no retries): a model is loaded and the store is open."""
        try:
            self.request("GET", "/v2/health/ready", accept=JSON, retries=0)
            return True
        except GtmsmError:
            return False

    def wait_ready(self, timeout: float = 30.0, interval: float = 0.2) -> None:
        """Waits until ``ready()``; raises ``TransportError`` / ``Unavailable`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                self._json("GET", "/v2/health/ready")  # raises the reason
            time.sleep(interval)

    # -- models --
    def models(self) -> List[Dict[str, Any]]:
        """Every loaded model: name, version, frame size and channels, actions, sizes, ..."""
        return self._json("GET", "/v1/models")["models"]

    def model(self, name: str) -> Dict[str, Any]:
        return self._json("GET", "/v1/models/" + _q(name))

    # -- sessions --
    def create_session(self, model: str, session_id: Optional[str] = None,
                       server_id: bool = False,
                       model_version: Optional[str] = None,
                       ttl_seconds: Optional[int] = None) -> Dict[str, Any]:
        """Opens a session on ``model`` (its newest loaded version, or ``model_version``).
        ``ttl_seconds`` is its own idle TTL (1..315360000 s; 0 never expires), overriding the
        daemon's --session-ttl; None follows the daemon's. By
        default the id is chosen here (``new_session_id()``) and sent with PUT, so a load
        balancer hashing the id routes it from the first request and retries are idempotent;
        PUT with an existing id of the same model and version returns it (``Conflict``
        ``model-mismatch`` otherwise). ``server_id=True`` uses POST /v1/sessions and lets the
        daemon choose."""
        body: Dict[str, Any] = {"model": model}
        if model_version is not None:
            body["model_version"] = model_version
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        if server_id:
            if session_id is not None:
                raise ValueError("session_id and server_id=True exclude each other")
            return self._json("POST", "/v1/sessions", body, idempotent=False)
        sid = session_id or new_session_id()
        return self._json("PUT", "/v1/sessions/" + _q(sid), body)

    def list_sessions(self, model: Optional[str] = None,
                      page_size: Optional[int] = None) -> Iterator[Dict[str, Any]]:
        """Every stored session (of ``model`` when given), in creation order: an iterator that
        fetches GET /v1/sessions a page at a time (``page_size`` per page, the server's default
        50 when None; at most 500) and follows ``next_page_token``. Each item is what
        ``session()`` returns."""
        token: Optional[str] = None
        while True:
            query = {k: v for k, v in (("model", model), ("limit", page_size),
                                       ("page_token", token)) if v is not None}
            path = "/v1/sessions" + ("?" + urllib.parse.urlencode(query) if query else "")
            page = self._json("GET", path)
            yield from page["sessions"]
            token = page.get("next_page_token")
            if not token:
                return

    def rebuild(self, session: SessionRef, model_version: Optional[str] = None) -> Dict[str, Any]:
        """POST /v1/sessions/{id}/rebuild: re-encodes the session's stored frames with
        ``model_version`` of its model (the newest loaded when None) and commits the new memory
        in one transaction; returns the session object with its new ``model_version``. Safe to
        retry (rebuilding onto the version it is on gives the same memory)."""
        body = {} if model_version is None else {"model_version": model_version}
        return self._json("POST", "/v1/sessions/" + _q(_sid(session)) + "/rebuild", body)

    @contextmanager
    def temporary_session(self, model: str, session_id: Optional[str] = None
                          ) -> Iterator[Dict[str, Any]]:
        """A session for the ``with`` block only: created on entry (like ``create_session``),
        deleted on exit, also when the block raises (then a failure to delete does not hide
        the block's exception)::

            with c.temporary_session("imagenav") as s:
                c.observe(s, "episode.ndjson")
                frames = c.predict(s, ["left", "up"]).arrays()
        """
        s = self.create_session(model, session_id)
        try:
            yield s
        except BaseException:
            try:
                self.delete_session(s, missing_ok=True)
            except GtmsmError:
                pass
            raise
        self.delete_session(s, missing_ok=True)

    def open_session(self, model: str, session_id: str) -> Dict[str, Any]:
        """The session ``session_id``, created on ``model`` only if it exists nowhere: a GET
        first, and the PUT only after a 404. Use it to resume a session that should exist: while
        its replica is down the daemons answer 503 (``owner-unavailable`` on per-replica SQLite,
        ``session-leased-elsewhere`` on a shared PostgreSQL), which is retried like any 503
        instead of creating an empty copy elsewhere (docs/DEPLOY.md). ``Conflict``
        ``model-mismatch`` when it exists with another model."""
        try:
            s = self.session(session_id)
        except NotFound:
            return self.create_session(model, session_id)
        if s.get("model") != model:
            raise Conflict(409, "urn:gtmsm:problem:model-mismatch", "Conflict",
                           f"session {session_id!r} exists with model {s.get('model')!r}, not {model!r}")
        return s

    def session(self, session: SessionRef) -> Dict[str, Any]:
        """GET /v1/sessions/{id}: id, model, model_version, steps, memory_entries, times."""
        return self._json("GET", "/v1/sessions/" + _q(_sid(session)))

    get_session = session

    def delete_session(self, session: SessionRef, missing_ok: bool = False) -> bool:
        """Deletes the session, its memory and frames. Returns False when it did not exist and
        ``missing_ok`` (else ``NotFound``)."""
        try:
            reply, _ = self.request("DELETE", "/v1/sessions/" + _q(_sid(session)))
        except NotFound as e:
            if missing_ok or e.attempts > 1:
                return False  # (a retry after a lost reply finds it already gone)
            raise
        return reply.status == 204

    # -- observations --
    def observe(self, session: SessionRef, observations: Observations, chunk: int = 256,
                window: int = 4096, start_t: int = 0, states: bool = False) -> ObserveResult:
        """Streams observations as NDJSON with chunked transfer encoding.

        ``observations``: a path to an NDJSON file (what ``gtmsm gen`` prints), NDJSON bytes, a
        file object, or an iterable of dicts ``{"t", "action", "frame"}`` (frame as base64 or raw
        PNG bytes) or of NDJSON lines. Those with ``t < start_t`` are skipped. Each request
        carries up to ``window`` observations in HTTP chunks of ``chunk`` lines (the daemon
        commits every chunk as it arrives).

        Retries are safe because ``t`` makes observations idempotent: after a connection error
        or a 503 the request is sent again (what was stored comes back as duplicates); a 409
        ``gap`` resumes at the problem's ``expected_t`` when these observations hold it (a path,
        bytes or a list are read again if needed); a 413 or 422 ``too-many-frames`` after some
        progress continues at the problem's ``steps``. Anything else raises (``Conflict`` with
        ``expected_t``, ``Unprocessable``, ...) and what was committed before stays committed.
        ``states=True`` asks every request for the states its new observations were stored
        under (``?states=true``), collected in the result's ``states``.
        """
        if chunk < 1 or window < 1:
            raise ValueError("chunk and window must be >= 1")
        sid = _sid(session)
        path = f"/v1/sessions/{_q(sid)}/observations" + ("?states=true" if states else "")
        src = _Source(observations)
        res = ObserveResult()
        it = src.lines(start_t)
        buf = _take(it, window)
        last_target: Optional[int] = None
        while buf:
            pos = 0
            while pos < len(buf):
                part = buf[pos:]

                def pieces(part: List[Tuple[int, bytes]] = part) -> Iterator[bytes]:
                    for i in range(0, len(part), chunk):
                        yield b"".join(line for _, line in part[i:i + chunk])
                res.requests += 1
                try:
                    reply, _ = self.request("POST", path, pieces, NDJSON, JSON)
                except GtmsmError as e:
                    res.retries += e.attempts - 1
                    res.accepted += e.accepted or 0
                    res.duplicates += e.duplicates or 0
                    res.states += e.problem.get("states") or []
                    if e.steps is not None:
                        res.steps = e.steps
                    target = self._resume_target(e, part[0][0])
                    if target is None or (target == last_target and not e.accepted):
                        raise
                    last_target = target
                    k = next((i for i, (t, _) in enumerate(buf) if t == target), None)
                    if k is not None:
                        pos = k
                    elif src.rereadable:
                        it = src.lines(target)
                        buf = _take(it, window)
                        pos = 0
                        if not buf or buf[0][0] != target:
                            raise
                    else:
                        raise
                    res.resumes += 1
                    continue
                res.retries += reply.attempts - 1
                j = reply.json()
                res.accepted += j["accepted"]
                res.duplicates += j["duplicates"]
                res.states += j.get("states", [])
                res.steps = j["steps"]
                pos = len(buf)
            buf = _take(it, window)
        if res.requests == 0:
            res.steps = self.session(sid)["steps"]
        return res

    @staticmethod
    def _resume_target(e: GtmsmError, first_t: int) -> Optional[int]:
        if isinstance(e, Conflict) and e.slug == "gap" and e.expected_t is not None:
            return e.expected_t
        limit = isinstance(e, PayloadTooLarge) or (isinstance(e, Unprocessable)
                                                   and e.slug == "too-many-frames")
        if limit and e.steps is not None and e.accepted and e.steps > first_t:
            return e.steps
        return None

    def observe_png(self, session: SessionRef, t: int, action: Union[str, int],
                    frame: Union[bytes, str, "os.PathLike[str]"]) -> Dict[str, Any]:
        """Uploads one frame as ``image/png`` (``frame``: PNG bytes or a path) with its step
        ``t`` and ``action``; returns ``{"accepted", "duplicates", "steps"}``."""
        if not isinstance(frame, (bytes, bytearray)):
            with open(frame, "rb") as f:
                frame = f.read()
        q = urllib.parse.urlencode({"t": int(t), "action": str(action)})
        reply, _ = self.request("POST", f"/v1/sessions/{_q(_sid(session))}/observations?{q}",
                                bytes(frame), PNG, JSON)
        return reply.json()

    # -- predictions --
    def _predict_body(self, actions: Actions, mode: str, seed: int) -> bytes:
        body = {"actions": _actions(actions), "mode": mode, "seed": int(seed)}
        return json.dumps(body).encode("utf-8")

    def predict(self, session: SessionRef, actions: Actions, mode: str = "mean", seed: int = 0,
                stream: bool = False) -> Prediction:
        """The frame after each action, from the session's current state (the session does not
        change). ``actions``: names or indices, or one comma-separated string. ``mode`` ``mean``
        (deterministic) or ``sample`` (seeded by ``seed``). The reply is JSON, or NDJSON read
        line by line with ``stream=True``; either way each frame comes as PNG bytes with its
        state."""
        if stream:
            return Prediction(list(self.iter_predict(session, actions, mode, seed)))
        reply, _ = self.request("POST", f"/v1/sessions/{_q(_sid(session))}/predictions",
                                self._predict_body(actions, mode, seed), JSON, JSON)
        j = reply.json()
        return Prediction([_frame(f) for f in j["frames"]], j.get("steps"))

    def iter_predict(self, session: SessionRef, actions: Actions, mode: str = "mean",
                     seed: int = 0) -> Iterator[PredictedFrame]:
        """Like ``predict`` with ``Accept: application/x-ndjson``: yields each frame as the
        daemon encodes it."""
        reply, resp = self.request("POST", f"/v1/sessions/{_q(_sid(session))}/predictions",
                                   self._predict_body(actions, mode, seed), JSON, NDJSON,
                                   stream=True)
        assert resp is not None
        try:
            while True:
                try:
                    line = resp.readline()
                except (OSError, http.client.HTTPException) as e:
                    raise TransportError(f"reading predicted frames: {e!r}") from e
                if not line:
                    break
                if line.strip():
                    yield _frame(json.loads(line))
        finally:
            resp.close()

    def predict_strip(self, session: SessionRef, actions: Actions, mode: str = "mean",
                      seed: int = 0, path: Optional[str] = None) -> Strip:
        """The predicted frames as one PNG film strip (``Accept: image/png``), left to right;
        also written to ``path`` when given."""
        reply, _ = self.request("POST", f"/v1/sessions/{_q(_sid(session))}/predictions",
                                self._predict_body(actions, mode, seed), JSON, PNG)
        if reply.headers.get("content-type", "").split(";")[0].strip() != PNG:
            raise GtmsmError(reply.status, "about:blank", "", "expected an image/png reply, got "
                             + reply.headers.get("content-type", "(none)"), None, reply.headers)
        n = int(reply.headers.get("x-frame-count", "0") or 0)
        w = int(reply.headers.get("x-frame-width", "0") or 0)
        if not w and n:
            w = pngmod.size(reply.body)[0] // n
        s = Strip(reply.body, n, w, reply)
        if path:
            s.save(path)
        return s

    # -- moving sessions --
    def export_session(self, session: SessionRef, path: Optional[str] = None) -> Dict[str, Any]:
        """The session's portable dump (model version, memory, state, raw frames); also written
        to ``path`` as JSON when given."""
        reply, _ = self.request("GET", f"/v1/sessions/{_q(_sid(session))}/export", accept=JSON)
        if path:
            _write(path, reply.body)
        return reply.json()

    def import_session(self, dump: Union[Mapping[str, Any], bytes, str, "os.PathLike[str]"],
                       session_id: Optional[str] = None) -> Dict[str, Any]:
        """Recreates a session from a dump (a dict, JSON bytes, or a path to a JSON file) on a
        daemon serving the same model version; ``session_id`` renames it. ``Conflict``
        ``session-exists`` when the id is taken. The id always travels in the query (the
        dump's own id when ``session_id`` is not given), so a load balancer that routes by
        session id sends the import to the replica that will own it."""
        if isinstance(dump, cabc.Mapping):
            body = json.dumps(dump).encode("utf-8")
        elif isinstance(dump, (bytes, bytearray)):
            body = bytes(dump)
        else:
            with open(dump, "rb") as f:
                body = f.read()
        if not session_id:
            try:
                parsed = dump if isinstance(dump, cabc.Mapping) else json.loads(body)
                session_id = parsed.get("id") if isinstance(parsed, dict) else None
            except ValueError:
                session_id = None  # not JSON: the daemon says so
        path = "/v1/sessions/import"
        if session_id:
            path += "?" + urllib.parse.urlencode({"id": session_id})
        reply, _ = self.request("POST", path, body, JSON, JSON, idempotent=False)
        return reply.json()

    def metrics(self) -> str:
        """GET /metrics (Prometheus text)."""
        reply, _ = self.request("GET", "/metrics")
        return reply.body.decode("utf-8")


class _Stream:
    """A reply being read, with its own connection."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse):
        self.conn = conn
        self.resp = resp

    def readline(self) -> bytes:
        return self.resp.readline()

    def read(self, n: Optional[int] = None) -> bytes:
        return self.resp.read(n)

    def close(self) -> None:
        self.resp.close()
        self.conn.close()


class _Transport(Exception):
    """A failed exchange: no reply. ``not_sent``: the daemon surely did not get the request."""

    def __init__(self, cause: BaseException, not_sent: bool = False, stale: bool = False):
        super().__init__(repr(cause))
        self.cause = cause
        self.not_sent = not_sent
        self.stale = stale


def _frame(j: Mapping[str, Any]) -> PredictedFrame:
    return PredictedFrame(int(j["index"]), str(j["action"]), base64.b64decode(j["png"]),
                          [float(x) for x in j["state"]])

