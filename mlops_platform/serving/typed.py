"""What the typed routes share: the request models generated from the spec and the label
contract, and strict JSON bodies parsed with pydantic's own (bounded) parser."""

from __future__ import annotations

from fastapi import Header, HTTPException
from pydantic import BaseModel, Field, ValidationError, create_model

from mlops_platform.specs import ModelSpec


def feature_model(spec: ModelSpec, ranges: dict) -> type[BaseModel]:
    """The typed request of /predict, generated from the spec's features. Declared ranges are
    documented here and enforced by `normalize` (400), like on every other route."""
    fields = {
        name: (str, Field(max_length=256, description="category"))
        for name in spec.features.categorical
    }
    for name in spec.features.numeric:
        extra = {"minimum": ranges[name][0], "maximum": ranges[name][1]} if name in ranges else {}
        fields[name] = (
            float | None,
            Field(description="number, or null if unknown", json_schema_extra=extra or None),
        )
    return create_model(f"{spec.name.title().replace('_', '')}Features", **fields)


class PredictResponse(BaseModel):
    request_id: str
    score: float = Field(description="probability of the positive class, or the prediction")
    decision: bool | None = Field(description="score >= decision threshold (classification)")
    model: str
    version: str
    alias: str


class RollbackRequest(BaseModel):
    reason: str = Field(min_length=3, max_length=500)


def validated(model: type[BaseModel], body: bytes) -> BaseModel:
    """Parse and validate a JSON body with pydantic's own parser, which bounds nesting and
    refuses invalid Unicode itself (the standard parser raises RecursionError, and CPython 3.11
    can then fail a later compile in that thread). Errors are 422 like FastAPI's, without
    echoing the input."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        detail = [
            {"type": e["type"], "loc": ["body", *e["loc"]], "msg": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        raise HTTPException(422, detail[:20]) from None


def json_body(model: type[BaseModel]) -> dict:
    """OpenAPI request body of a route that reads its body itself."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }


async def require_json(content_type: str = Header(default="")) -> None:
    # async: FastAPI runs a plain `def` dependency on its thread pool, a thread hop (and GIL
    # hand-over) on every request, and the first one imports anyio's backend (~30 ms).
    kind = content_type.split(";")[0].strip().lower()
    if kind != "application/json":
        raise HTTPException(415, f"content type {kind or '(none)'!r}: use application/json")
