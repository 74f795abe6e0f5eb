"""Open Inference Protocol (KServe V2) routes; every error is `{"error": ...}`."""

from __future__ import annotations

import uuid
from importlib.metadata import version as package_version

from fastapi import FastAPI, Request, Response

from mlops_platform.model.input import InputError
from mlops_platform.serving.openapi import health_route, infer_body
from mlops_platform.serving.protocols import ProtocolError, TooManyRows
from mlops_platform.serving.service import NotReady, Scoring

JSON_KINDS = ("", "application/json")


def add_oip_routes(app: FastAPI, scoring: Scoring, reply) -> None:
    """`reply(body, status)` renders JSON."""
    spec = scoring.spec

    def error(message: str, status: int) -> Response:
        return reply({"error": message}, status)

    def check(name: str, version: str | None = None) -> Response | None:
        if name != spec.name:
            return error(f"unknown model {name!r}; this server serves {spec.name!r}", 404)
        served = [h.version for h in (scoring.manager.champion, scoring.manager.challenger) if h]
        if version is not None and version not in served:
            return error(f"version {version!r} of {name!r} is not being served", 404)
        return None

    @health_route(app, "/v2")
    async def v2_server() -> dict:
        return {
            "name": "mlops-platform",
            "version": package_version("mlops_platform"),
            "extensions": [],
        }

    @health_route(app, "/v2/health/live")
    async def v2_live() -> dict:
        return {"live": True}

    @health_route(app, "/v2/health/ready")
    async def v2_ready() -> Response:
        return reply({"ready": scoring.ready()}, 200 if scoring.ready() else 503)

    def metadata(version: str | None) -> dict:
        champion = scoring.manager.champion
        return {
            "name": spec.name,
            "versions": [version] if version else [champion.version] if champion else [],
            "platform": "sklearn",
            "inputs": [
                {"name": c, "datatype": "BYTES", "shape": [-1]} for c in spec.features.categorical
            ]
            + [{"name": c, "datatype": "FP64", "shape": [-1]} for c in spec.features.numeric],
            "outputs": [{"name": "score", "datatype": "FP64", "shape": [-1]}],
            "parameters": {"content_type": "pd"},
        }

    @app.get("/v2/models/{name}")
    async def v2_metadata(name: str) -> Response:
        return check(name) or reply(metadata(None), 200)

    @app.get("/v2/models/{name}/versions/{version}")
    async def v2_version_metadata(name: str, version: str) -> Response:
        return check(name, version) or reply(metadata(version), 200)

    def readiness(name: str) -> Response:
        ready = scoring.ready()
        return reply({"name": name, "ready": ready}, 200 if ready else 503)

    @health_route(app, "/v2/models/{name}/ready")
    async def v2_model_ready(name: str) -> Response:
        return check(name) or readiness(name)

    @health_route(app, "/v2/models/{name}/versions/{version}/ready")
    async def v2_version_ready(name: str, version: str) -> Response:
        return check(name, version) or readiness(name)

    async def infer(name: str, request: Request, version: str | None) -> Response:
        refused = check(name, version)
        if refused:
            return refused
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in JSON_KINDS:
            return error(f"content type {kind!r} is not supported: use application/json", 415)
        if not scoring.ready():
            return error("no verified champion loaded yet", 503)
        try:
            body = await request.body()
            # Triton's binary extension: a JSON header of this length, binary tensors after.
            header_length = request.headers.get("inference-header-content-length")
            if header_length is not None:
                if not header_length.isdigit():
                    raise ProtocolError("inference-header-content-length must be an integer")
                if int(header_length) != len(body):
                    raise ProtocolError(
                        "binary tensor data is not supported: send the "
                        "tensors as JSON (binary_data=False)"
                    )
            prepared = await scoring.prepare("oip", body, "v2_infer")
            request_id = (
                prepared.payload.get("id")
                or request.headers.get("x-request-id")
                or uuid.uuid4().hex
            )
            if len(request_id) > scoring.settings.max_request_id_chars:
                limit = scoring.settings.max_request_id_chars
                raise ProtocolError(f"'id' is longer than {limit} characters")
            scored = await scoring.score(prepared, request_id, "v2_infer", version)
        except TooManyRows as exc:
            return error(str(exc), 413)
        except (ProtocolError, InputError) as exc:
            return error(str(exc), 400)
        except NotReady as exc:
            return error(str(exc), exc.status)
        return reply(
            {
                "model_name": spec.name,
                "model_version": scored.handle.version,
                "id": request_id,
                "parameters": {"content_type": "np", "alias": scored.handle.alias},
                "outputs": [
                    {
                        "name": "score",
                        "datatype": "FP64",
                        "shape": [prepared.rows],
                        "data": scored.scores.tolist(),
                    }
                ],
            },
            200,
        )

    body = {"requestBody": infer_body(spec, scoring.ranges, scoring.settings.max_request_rows)}

    @app.post("/v2/models/{name}/infer", openapi_extra=body)
    async def v2_infer(name: str, request: Request) -> Response:
        return await infer(name, request, None)

    @app.post("/v2/models/{name}/versions/{version}/infer", openapi_extra=body)
    async def v2_version_infer(name: str, version: str, request: Request) -> Response:
        return await infer(name, request, version)
