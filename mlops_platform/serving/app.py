"""The serving API: MLflow scoring protocol, Open Inference Protocol, typed /predict, feedback,
Prometheus metrics and token-protected admin routes. `create_app` builds it; `mlops serve` runs it.
"""

import asyncio
import contextlib
import datetime as dt
import gc
import hmac
import json
import logging
import uuid
from importlib.metadata import version as package_version

import orjson
from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, create_model

from mlops_platform.registry.store import ModelRegistry
from mlops_platform.serving.batcher import MicroBatcher
from mlops_platform.serving.guard import Guard
from mlops_platform.serving.manager import ModelManager
from mlops_platform.serving.metrics import ServingMetrics
from mlops_platform.serving.predictionlog import (
    PartitionedLog,
    feedback_schema,
    prediction_schema,
)
from mlops_platform.serving.protocols import ProtocolError, parse_csv, parse_mlflow_json, parse_oip
from mlops_platform.serving.scorer import InputError, normalize
from mlops_platform.serving.settings import ServingSettings
from mlops_platform.specs import ModelSpec, load_spec

log = logging.getLogger("mlops.serving")


def _json(body, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
    )


def _loads(body: bytes):
    """orjson, falling back to the standard parser, which (like MLflow's server) accepts the
    NaN/Infinity tokens Python clients emit for missing numbers."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ProtocolError(f"invalid JSON: {exc}") from None


def _bad_request(message: str, status: int = 400) -> Response:
    return _json({"error_code": "BAD_REQUEST", "message": message}, status)


def feature_model(spec: ModelSpec) -> type[BaseModel]:
    """The typed request of /predict, generated from the spec's features."""
    fields = {name: (str, Field(description="category")) for name in spec.features.categorical}
    fields |= {
        name: (float | None, Field(description="number, or null if unknown"))
        for name in spec.features.numeric
    }
    return create_model(f"{spec.name.title().replace('_', '')}Features", **fields)


class PredictResponse(BaseModel):
    request_id: str
    score: float = Field(description="probability of the positive class, or the prediction")
    decision: bool | None = Field(description="score >= decision threshold (classification)")
    model: str
    version: str
    alias: str


class Feedback(BaseModel):
    """Ground truth for a flight, by its natural key."""

    year: int
    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)
    carrier: str
    flight: int
    origin: str
    arr_delay: float | None = Field(description="minutes; null if cancelled or diverted")
    request_id: str | None = None


class RollbackRequest(BaseModel):
    reason: str = Field(min_length=3, max_length=500)


def create_app(
    settings: ServingSettings | None = None, registry: ModelRegistry | None = None, warehouse=None
) -> FastAPI:
    settings = settings or ServingSettings()
    spec = load_spec(settings.model)
    if registry is None or warehouse is None:
        from mlops_platform.profiles import plain_resources

        resources = plain_resources()
        registry = registry or resources["mlflow_registry"].registry()
        warehouse = warehouse or resources["warehouse"]
    metrics = ServingMetrics()
    manager = ModelManager(registry, spec, poll_seconds=settings.poll_seconds)
    # The model-version gauge changes when the models do, not on every request.
    manager.on_change = lambda: metrics.set_models([manager.champion, manager.challenger])
    manager.on_refused = lambda alias, version, _: metrics.refused.labels(alias, version).inc()
    predictions = PartitionedLog(f"{settings.log_dir}/predictions", prediction_schema(spec))
    feedback_log = PartitionedLog(f"{settings.log_dir}/feedback", feedback_schema())
    batcher = MicroBatcher(
        manager,
        metrics,
        predictions,
        max_rows=settings.max_batch_rows,
        canary_percent=settings.canary_percent,
        shadow=settings.shadow,
    )
    classification = spec.task == "classification"

    async def wait_for_champion() -> None:
        await asyncio.to_thread(manager.wait_for_champion, None, settings.retry_seconds)
        manager.start_watching()
        # Everything loaded so far (libraries, models) lives as long as the process: keep it
        # out of the cyclic GC, whose full passes over it stalled requests for ~100 ms.
        gc.collect()
        gc.freeze()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        loading = asyncio.create_task(wait_for_champion())
        yield
        loading.cancel()
        manager.stop()
        await batcher.stop()
        predictions.close()
        feedback_log.close()
        log.warning(
            "stopped; %d predictions and %d feedback records written",
            predictions.written,
            feedback_log.written,
        )

    app = FastAPI(
        title=f"{spec.name} serving", lifespan=lifespan, description=spec.description.strip()
    )
    app.state.manager, app.state.batcher, app.state.settings = manager, batcher, settings
    app.state.predictions, app.state.feedback = predictions, feedback_log

    def ready() -> bool:
        return manager.champion is not None

    async def score(columns: dict, rows: int, request_id: str, route: str):
        if not ready():
            raise HTTPException(503, "no verified champion loaded yet")
        normal = normalize(columns, rows, spec)
        scored = await batcher.score(normal, rows, request_id, route)
        return scored

    def mlflow_reply(scores) -> list:
        if classification:
            return [[1.0 - p, p] for p in scores.tolist()]
        return scores.tolist()

    # -- MLflow scoring protocol -------------------------------------------------------------
    @app.get("/ping")
    async def ping() -> Response:
        return Response("\n", status_code=200 if ready() else 503, media_type="application/json")

    @app.get("/health")
    async def health() -> Response:
        # Same status as /ping; the body says which versions serve and which were refused.
        return _json({"ready": ready(), **models_state()}, 200 if ready() else 503)

    @app.get("/version")
    async def mlflow_version() -> Response:
        return Response(package_version("mlflow"), media_type="text/plain")

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in ("application/json", "text/csv"):
            return _json(
                {
                    "error_code": "BAD_REQUEST",
                    "message": f"content type {kind or '(none)'!r} is not supported: use "
                    "application/json or text/csv",
                },
                415,
            )
        body = await request.body()
        try:
            if kind == "text/csv":
                columns, rows = parse_csv(body)
            else:
                columns, rows = parse_mlflow_json(_loads(body))
            scored = await score(columns, rows, _request_id(request), "invocations")
        except (ProtocolError, InputError) as exc:
            return _bad_request(str(exc))
        except HTTPException as exc:
            return _json(
                {"error_code": "SERVICE_UNAVAILABLE", "message": exc.detail}, exc.status_code
            )
        return _json({"predictions": mlflow_reply(scored.scores)})

    # -- Open Inference Protocol (KServe V2) -------------------------------------------------
    def _check_name(name: str) -> None:
        if name != spec.name:
            raise HTTPException(404, f"unknown model {name!r}; this server serves {spec.name!r}")

    @app.get("/v2")
    async def v2_server() -> dict:
        return {
            "name": "mlops-platform",
            "version": package_version("mlops_platform"),
            "extensions": [],
        }

    @app.get("/v2/health/live")
    async def v2_live() -> dict:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def v2_ready() -> Response:
        return _json({"ready": ready()}, 200 if ready() else 503)

    @app.get("/v2/models/{name}")
    async def v2_metadata(name: str) -> dict:
        _check_name(name)
        champion = manager.champion
        return {
            "name": spec.name,
            "versions": [champion.version] if champion else [],
            "platform": "sklearn",
            "inputs": [
                {"name": c, "datatype": "BYTES", "shape": [-1]} for c in spec.features.categorical
            ]
            + [{"name": c, "datatype": "FP64", "shape": [-1]} for c in spec.features.numeric],
            "outputs": [{"name": "score", "datatype": "FP64", "shape": [-1]}],
            "parameters": {"content_type": "pd"},
        }

    @app.get("/v2/models/{name}/ready")
    async def v2_model_ready(name: str) -> Response:
        _check_name(name)
        return _json({"name": name, "ready": ready()}, 200 if ready() else 503)

    @app.post("/v2/models/{name}/infer")
    async def v2_infer(name: str, request: Request) -> Response:
        _check_name(name)
        try:
            body = await request.body()
            # Triton's binary extension: a JSON header of this length, binary tensors after.
            header_length = request.headers.get("inference-header-content-length")
            if header_length is not None:
                if int(header_length) != len(body):
                    raise ProtocolError(
                        "binary tensor data is not supported: send the "
                        "tensors as JSON (binary_data=False)"
                    )
            payload = _loads(body)
            columns, rows = parse_oip(payload)
            scored = await score(
                columns, rows, payload.get("id") or _request_id(request), "v2_infer"
            )
        except (ProtocolError, InputError) as exc:
            return _json({"error": str(exc)}, 400)
        except HTTPException as exc:
            return _json({"error": exc.detail}, exc.status_code)
        return _json(
            {
                "model_name": spec.name,
                "model_version": scored.handle.version,
                "id": payload.get("id") or str(uuid.uuid4()),
                "parameters": {"content_type": "np", "alias": scored.handle.alias},
                "outputs": [
                    {
                        "name": "score",
                        "datatype": "FP64",
                        "shape": [rows],
                        "data": scored.scores.tolist(),
                    }
                ],
            }
        )

    # -- typed API ---------------------------------------------------------------------------
    Features = feature_model(spec)

    @app.post("/predict", response_model=PredictResponse)
    async def predict(features: Features, request: Request) -> PredictResponse:  # type: ignore[valid-type]
        request_id = _request_id(request)
        columns = {k: [v] for k, v in features.model_dump().items()}
        try:
            scored = await score(columns, 1, request_id, "predict")
        except InputError as exc:
            raise HTTPException(422, str(exc)) from None
        value = float(scored.scores[0])
        return PredictResponse(
            request_id=request_id,
            score=value,
            decision=value >= settings.decision_threshold if classification else None,
            model=spec.name,
            version=scored.handle.version,
            alias=scored.handle.alias,
        )

    @app.post("/feedback", status_code=202)
    async def feedback(item: Feedback) -> dict:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        feedback_log.append({"ts": [now], **{k: [v] for k, v in item.model_dump().items()}})
        return {"accepted": True}

    @app.get("/metrics")
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- admin -------------------------------------------------------------------------------
    def require_admin(authorization: str = Header(default="")) -> None:
        token = settings.admin_token
        scheme, _, given = authorization.partition(" ")
        if (
            not token
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(given.encode(), token.encode())
        ):
            raise HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})

    def models_state() -> dict:
        return {
            alias: handle.version if handle else None
            for alias, handle in (
                ("champion", manager.champion),
                ("challenger", manager.challenger),
            )
        } | {"registry_error": manager.last_error, "refused": dict(manager.refused)}

    @app.post("/admin/reload", dependencies=[Depends(require_admin)])
    async def admin_reload() -> dict:
        changed = await asyncio.to_thread(manager.refresh)
        return {"changed": changed, **models_state()}

    @app.post("/admin/rollback", dependencies=[Depends(require_admin)])
    async def admin_rollback(body: RollbackRequest) -> JSONResponse:
        from mlops_platform.registry.promotion import PromotionRefused, rollback

        try:
            changes = await asyncio.to_thread(
                rollback,
                registry,
                warehouse,
                spec.name,
                reason=body.reason,
                actor="serving-admin",
                run_id="serving",
            )
        except PromotionRefused as exc:
            return JSONResponse({"detail": str(exc)}, status_code=409)
        await asyncio.to_thread(manager.refresh)
        queued = any(c.get("queued") for c in changes)  # warehouse busy: rows land later
        return JSONResponse(
            {"rolled_back_from": changes[0]["from_version"], "audit_queued": queued}
            | models_state()
        )

    return Guard(app, metrics, settings.max_body_bytes)


def _request_id(request: Request) -> str:
    return request.headers.get("x-request-id") or uuid.uuid4().hex
