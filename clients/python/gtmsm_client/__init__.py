"""gtmsm_client: a standard-library client for gtmsmd, the GTMSM prediction service.

    from gtmsm_client import Client
    c = Client("http://127.0.0.1:8080")
    s = c.create_session("imagenav")                 # a client-chosen id (uuid4 hex), PUT
    c.observe(s, "episode.ndjson")                   # NDJSON streamed, retried safely
    c.predict_strip(s, ["left", "up"], path="strip.png")
    with c.temporary_session("imagenav") as t:      # deleted when the block ends
        c.observe(t, "episode.ndjson")
        c.predict(t, ["left"]).arrays()              # numpy (T, H, W, C) when installed

See README.md beside this package, and ``python3 -m gtmsm_client --help`` for the CLI.
"""
from .client import (DEFAULT_URL, Client, ObserveResult, PredictedFrame, Prediction, Reply,
                     Strip, have_numpy, new_session_id)
from .errors import (BadRequest, Conflict, GtmsmError, MethodNotAllowed, NotFound,
                     PayloadTooLarge, ServerError, TransportError, Unauthorized, Unavailable,
                     Unprocessable, UnsupportedMediaType)

__version__ = "1.0.0"

__all__ = ["Client", "DEFAULT_URL", "ObserveResult", "PredictedFrame", "Prediction", "Reply",
           "Strip", "new_session_id", "have_numpy", "GtmsmError", "BadRequest", "Unauthorized", "NotFound",
           "MethodNotAllowed", "Conflict", "PayloadTooLarge", "UnsupportedMediaType",
           "Unprocessable", "ServerError", "Unavailable", "TransportError", "__version__"]
