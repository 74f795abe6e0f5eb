"""`POST /invocations` (MLflow scoring protocol) as a plain ASGI handler: the hot route.

`Guard` serves it directly, after its checks (headers, body limit, concurrency, rate, timeout)
and with its request metrics; the FastAPI route of the same path (its OpenAPI documentation)
calls the same `answer`. The work per request is what the protocol needs and no more: read the
body, parse and check it (`Scoring.prepare`), score it (`Scoring.score`, batched with
concurrent requests) and encode the reply with orjson.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import orjson

from mlops_platform.model.input import InputError
from mlops_platform.serving.protocols import ProtocolError, TooManyRows
from mlops_platform.serving.service import NotReady, Scoring

#: replies up to this many rows are built as lists (numpy's column_stack costs more on few rows)
SMALL_REPLY_ROWS = 64
JSON_HEADERS = [(b"content-type", b"application/json")]


class RequestIds:
    """Unique request ids without uuid4's cost: a random per-process prefix and a counter
    (32 hex characters, like a uuid4's hex)."""

    def __init__(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


def encode(body, status: int = 200) -> tuple[int, bytes]:
    return status, orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def mlflow_error(message: str, status: int = 400, code: str = "BAD_REQUEST") -> tuple[int, bytes]:
    return encode({"error_code": code, "message": message}, status)


class Invocations:
    def __init__(self, scoring: Scoring, classification: bool, ids: RequestIds) -> None:
        self.scoring, self.classification, self.ids = scoring, classification, ids

    def reply(self, scores: np.ndarray):
        """MLflow's reply: [P(negative), P(positive)] per row, or the value per row."""
        if len(scores) <= SMALL_REPLY_ROWS:
            values = scores.tolist()
            return [[1.0 - s, s] for s in values] if self.classification else values
        # numpy arrays, encoded by orjson in C: no Python loop over the rows
        if self.classification:
            return np.column_stack((1.0 - scores, scores))
        return np.ascontiguousarray(scores)  # orjson encodes C-contiguous arrays only

    def check_kind(self, content_type: str) -> tuple[str | None, tuple[int, bytes] | None]:
        """("csv" | "mlflow", None), or (None, the error) before the body is read."""
        kind = content_type.split(";")[0].strip().lower()
        if kind not in ("application/json", "text/csv"):
            return None, mlflow_error(
                f"content type {kind or '(none)'!r} is not supported: use "
                "application/json or text/csv",
                415,
            )
        if not self.scoring.ready():
            return None, mlflow_error("no verified champion loaded yet", 503, "SERVICE_UNAVAILABLE")
        return ("csv" if kind == "text/csv" else "mlflow"), None

    async def answer(self, kind: str, body: bytes, request_id: str | None) -> tuple[int, bytes]:
        try:
            prepared = await self.scoring.prepare(kind, body, "invocations")
            scored = await self.scoring.score(
                prepared, request_id or self.ids.next(), "invocations"
            )
        except TooManyRows as exc:
            return mlflow_error(str(exc), 413, "REQUEST_TOO_LARGE")
        except (ProtocolError, InputError) as exc:
            return mlflow_error(str(exc))
        except NotReady as exc:
            return mlflow_error(str(exc), exc.status, "SERVICE_UNAVAILABLE")
        return encode({"predictions": self.reply(scored.scores)})

    async def __call__(self, scope, receive, send) -> None:
        content_type, request_id = "", None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"x-request-id":
                request_id = value.decode("latin-1")  # checked by the guard: printable ASCII
        kind, refused = self.check_kind(content_type)
        if refused is not None:
            return await _send(send, *refused)
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        await _send(send, *(await self.answer(kind, body, request_id)))


async def _send(send, status: int, payload: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*JSON_HEADERS, (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})
