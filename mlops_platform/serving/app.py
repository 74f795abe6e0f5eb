"""The serving API: MLflow scoring protocol, Open Inference Protocol, typed /predict, feedback,
Prometheus metrics and token-protected admin routes. `create_app` builds it; `mlops serve` runs it.

Input policy (the same on every route, see `scorer.normalize`): null/""/NaN are "unknown";
+-Infinity and numbers outside the contracts' declared ranges are refused (400 naming column
and row). Limits (body, rows, headers, concurrency, time, rate) are in `guard` and the settings.
"""

import asyncio
import contextlib
import datetime as dt
import gc
import logging
from importlib.metadata import version as package_version
from pathlib import Path

import orjson
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlops_platform.model.input import InputError
from mlops_platform.registry.store import ModelRegistry
from mlops_platform.serving.admin import add_admin_routes, models_state
from mlops_platform.serving.batcher import MicroBatcher
from mlops_platform.serving.breaker import CircuitBreaker
from mlops_platform.serving.feedback import ReferenceValues, feedback_model, feedback_schema
from mlops_platform.serving.guard import Guard, Limits
from mlops_platform.serving.invocations import Invocations, RequestIds
from mlops_platform.serving.manager import ModelManager
from mlops_platform.serving.metrics import ServingMetrics
from mlops_platform.serving.oip import add_oip_routes
from mlops_platform.serving.openapi import add_offline_docs, health_route, invocations_body
from mlops_platform.serving.predictionlog import PartitionedLog, prediction_schema
from mlops_platform.serving.privacy import hash_key, hashed_columns
from mlops_platform.serving.rules import feature_ranges, feedback_problems, feedback_rules
from mlops_platform.serving.service import NotReady, Scoring
from mlops_platform.serving.settings import ServingSettings
from mlops_platform.serving.typed import (
    PredictResponse,
    feature_model,
    json_body,
    require_json,
    validated,
)
from mlops_platform.specs import load_spec

log = logging.getLogger("mlops.serving")
#: container allocations between the cyclic GC's young collections (CPython's default: 700)
YOUNG_GC_OBJECTS = 10_000


def _json(body, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
    )


def create_app(
    settings: ServingSettings | None = None, registry: ModelRegistry | None = None, warehouse=None
) -> Guard:
    settings = settings or ServingSettings()
    spec = load_spec(settings.model)
    if registry is None or warehouse is None:
        from mlops_platform.stores import plain_stores

        stores = plain_stores()
        registry = registry or stores.mlflow.registry()
        warehouse = warehouse or stores.warehouse
    metrics = ServingMetrics()
    manager = ModelManager(registry, spec, poll_seconds=settings.poll_seconds)
    manager.breaker = CircuitBreaker(
        "registry", settings.breaker_failures, settings.breaker_reset_seconds
    )

    # The model-version gauge changes when the models do, not on every request.
    def models_changed() -> None:
        metrics.set_models([manager.champion, manager.challenger])

    manager.on_change = models_changed
    manager.on_refused = lambda alias, version, _: metrics.refused.labels(alias, version).inc()
    ranges = feature_ranges(spec)
    rules = feedback_rules(spec)
    references = ReferenceValues(warehouse, rules.references)
    log_dir = Path(settings.log_dir)
    schema = prediction_schema(spec)
    hashed = hashed_columns(settings.hash_columns, schema.names)
    predictions = PartitionedLog(
        log_dir / "predictions",
        schema,
        compact_seconds=settings.log_compact_seconds,
        hash_columns=hashed,
        hash_key=hash_key(settings.hash_key, log_dir / "hash.key") if hashed else b"",
        on_drop=lambda rows, _: metrics.log_dropped.labels("predictions").inc(rows),
    )
    feedback_log = PartitionedLog(
        log_dir / "feedback",
        feedback_schema(rules),
        compact_seconds=settings.log_compact_seconds,
        on_drop=lambda rows, _: metrics.log_dropped.labels("feedback").inc(rows),
    )
    batcher = MicroBatcher(
        manager,
        metrics,
        predictions,
        max_rows=settings.max_batch_rows,
        canary_percent=settings.canary_percent,
        shadow=settings.shadow,
        chunk_rows=settings.chunk_rows,
    )
    scoring = Scoring(spec, settings, manager, batcher, metrics, ranges)
    classification = spec.task == "classification"

    async def wait_for_champion() -> None:
        await asyncio.to_thread(references.refresh)
        await asyncio.to_thread(manager.wait_for_champion, None, settings.retry_seconds)
        manager.start_watching()
        await batcher.warm_up()
        # Everything loaded so far (libraries, models) lives as long as the process: keep it
        # out of the cyclic GC, whose full passes over it stalled requests for ~100 ms.
        gc.collect()
        gc.freeze()
        # A request's objects die with it (reference counts), but a 1,000-row body is 1,000
        # lists: at the default 700 allocations a young collection ran every request and
        # traversed the rows still in use (py-spy: a fifth of the parse thread's time).
        gc.set_threshold(YOUNG_GC_OBJECTS, *gc.get_threshold()[1:])

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        loading = asyncio.create_task(wait_for_champion())
        yield
        loading.cancel()
        manager.stop()
        scoring.close()  # first: new requests get a 503, none is queued after the batcher stops
        await batcher.stop()
        predictions.close()
        feedback_log.close()
        log.warning(
            "stopped; %d predictions and %d feedback records written, %d and %d dropped",
            predictions.written,
            feedback_log.written,
            predictions.dropped,
            feedback_log.dropped,
        )

    app = FastAPI(
        title=f"{spec.name} serving",
        lifespan=lifespan,
        description=spec.description.strip(),
        docs_url=None,
        redoc_url=None,
    )
    add_offline_docs(app)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # OIP clients read {"error": ...} from every answer under /v2 (404, 405 included).
        if request.url.path.startswith("/v2"):
            return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)
        return await http_exception_handler(request, exc)

    app.state.manager, app.state.batcher, app.state.settings = manager, batcher, settings
    app.state.predictions, app.state.feedback = predictions, feedback_log

    # -- MLflow scoring protocol -------------------------------------------------------------
    @health_route(app, "/ping")
    async def ping() -> Response:
        ready = scoring.ready()
        return Response("\n", status_code=200 if ready else 503, media_type="application/json")

    @health_route(app, "/health")
    async def health() -> Response:
        # Same status as /ping; the body says which versions serve and which were refused.
        ready = scoring.ready()
        return _json({"ready": ready, **models_state(manager)}, 200 if ready else 503)

    @health_route(app, "/version")
    async def mlflow_version() -> Response:
        return Response(package_version("mlflow"), media_type="text/plain")

    invocations_doc = invocations_body(spec, ranges, settings.max_request_rows)
    request_ids = RequestIds()
    hot = Invocations(scoring, classification, request_ids)

    # The guard serves POST /invocations with `hot` directly; this route documents it (and
    # answers if the app is mounted without the guard).
    @app.post("/invocations", openapi_extra={"requestBody": invocations_doc})
    async def invocations(request: Request) -> Response:
        kind, refused = hot.check_kind(request.headers.get("content-type", ""))
        if refused is None:
            body = await request.body()
            refused = await hot.answer(kind, body, request.headers.get("x-request-id"))
        status, payload = refused
        return Response(payload, status_code=status, media_type="application/json")

    add_oip_routes(app, scoring, _json)

    # -- typed API ---------------------------------------------------------------------------
    Features = feature_model(spec, ranges)

    @app.post(
        "/predict",
        response_model=PredictResponse,
        dependencies=[Depends(require_json)],
        responses={400: {"description": "a value outside the input policy"}, 422: {}},
        openapi_extra=json_body(Features),
    )
    async def predict(request: Request) -> PredictResponse:
        features = validated(Features, await request.body())
        request_id = request.headers.get("x-request-id") or request_ids.next()
        columns = {k: [v] for k, v in features.model_dump().items()}
        try:
            prepared = scoring.prepare_columns(columns, 1, "predict")
            scored = await scoring.score(prepared, request_id, "predict")
        except InputError as exc:
            raise HTTPException(400, str(exc)) from None
        except NotReady as exc:
            raise HTTPException(exc.status, str(exc)) from None
        value = float(scored.scores[0])
        return PredictResponse(
            request_id=request_id,
            score=value,
            decision=value >= settings.decision_threshold if classification else None,
            model=spec.name,
            version=scored.handle.version,
            alias=scored.handle.alias,
        )

    FeedbackModel = feedback_model(rules, settings.max_request_id_chars)

    @app.post(
        "/feedback",
        status_code=202,
        dependencies=[Depends(require_json)],
        responses={422: {}},
        openapi_extra=json_body(FeedbackModel),
    )
    async def feedback(request: Request) -> dict:
        item = validated(FeedbackModel, await request.body())
        if references.stale():
            await asyncio.to_thread(references.refresh)
        if references.values is None:
            raise HTTPException(503, f"cannot check feedback yet: {references.error}")
        record = item.model_dump()
        today = dt.datetime.now(dt.UTC).date()
        problems = feedback_problems(record, rules, references.values, today)
        if problems:
            raise HTTPException(422, problems)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        feedback_log.append({"ts": [now], **{k: [v] for k, v in record.items()}})
        return {"accepted": True}

    @app.get("/metrics")
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        metrics.registry_circuit_open.set(manager.breaker.state == "open")
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    add_admin_routes(app, settings, manager, registry, warehouse, spec.name)

    limits = Limits(
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        max_request_id_chars=settings.max_request_id_chars,
        max_concurrent=settings.max_concurrent,
        timeout_seconds=settings.request_timeout_seconds,
        rate_per_second=settings.rate_limit_per_second,
        rate_burst=settings.rate_limit_burst,
    )
    guarded = Guard(app, metrics, limits, routes={("POST", "/invocations"): hot})
    guarded.state = app.state  # tests and tools reach the app's state through the wrapper
    return guarded
