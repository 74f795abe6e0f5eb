"""Token-protected admin routes: reload the models, roll the champion back (audited)."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from mlops_platform.serving.manager import ModelManager
from mlops_platform.serving.settings import ServingSettings
from mlops_platform.serving.typed import RollbackRequest, json_body, validated


def models_state(manager: ModelManager) -> dict:
    """Which versions serve, which were refused (and why), and the registry's state."""
    return {
        alias: handle.version if handle else None
        for alias, handle in (("champion", manager.champion), ("challenger", manager.challenger))
    } | {
        "registry_error": manager.last_error,
        "registry_circuit": manager.breaker.state,
        "refused": dict(manager.refused),
    }


def add_admin_routes(
    app: FastAPI,
    settings: ServingSettings,
    manager: ModelManager,
    registry,
    warehouse,
    model: str,
) -> None:
    def require_admin(authorization: str = Header(default="")) -> None:
        token = settings.admin_token
        scheme, _, given = authorization.partition(" ")
        if (
            not token
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(given.encode(), token.encode())
        ):
            raise HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})

    @app.post("/admin/reload", dependencies=[Depends(require_admin)])
    async def admin_reload() -> dict:
        changed = await asyncio.to_thread(manager.refresh)
        return {"changed": changed, **models_state(manager)}

    @app.post(
        "/admin/rollback",
        dependencies=[Depends(require_admin)],
        openapi_extra=json_body(RollbackRequest),
    )
    async def admin_rollback(request: Request) -> JSONResponse:
        body = validated(RollbackRequest, await request.body())
        from mlops_platform.registry.promotion import PromotionRefused, rollback

        try:
            changes = await asyncio.to_thread(
                rollback,
                registry,
                warehouse,
                model,
                reason=body.reason,
                actor="serving-admin",
                run_id="serving",
            )
        except PromotionRefused as exc:
            return JSONResponse({"detail": str(exc)}, status_code=409)
        await asyncio.to_thread(manager.refresh)
        queued = any(c.queued for c in changes)  # warehouse busy: rows land later
        return JSONResponse(
            {"rolled_back_from": changes[0].from_version, "audit_queued": queued}
            | models_state(manager)
        )
