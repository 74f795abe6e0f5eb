"""OpenAPI descriptions of the raw-body routes, and the offline API docs.

`/invocations` and `/v2/.../infer` read their bodies themselves (several formats, no pydantic
on the hot path); these schemas describe the real bodies so that the docs, clients and the
property-based API tests see what is accepted. `/docs` is Swagger UI from the
`swagger-ui-bundle-v2` package (Swagger UI 5, which renders the OpenAPI 3.1 FastAPI writes),
served by the app itself: no CDN, so it works offline.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from mlops_platform.specs import ModelSpec

ASSETS = "/docs-assets"


def _value(name: str, spec: ModelSpec, ranges: dict) -> dict:
    if name in spec.features.categorical:
        return {"type": ["string", "null"], "maxLength": 256}
    schema: dict = {"type": ["number", "null"]}
    if name in ranges:
        schema["minimum"], schema["maximum"] = ranges[name]
    return schema


def record_schema(spec: ModelSpec, ranges: dict) -> dict:
    return {
        "type": "object",
        "properties": {c: _value(c, spec, ranges) for c in spec.features.columns},
        "required": list(spec.features.columns),
    }


def invocations_body(spec: ModelSpec, ranges: dict, max_rows: int) -> dict:
    records = {
        "type": "array",
        "items": record_schema(spec, ranges),
        "minItems": 1,
        "maxItems": max_rows,
    }
    columns = {
        "type": "object",
        "properties": {
            c: {"type": "array", "items": _value(c, spec, ranges), "minItems": 1}
            for c in spec.features.columns
        },
        "required": list(spec.features.columns),
    }
    split = {
        "type": "object",
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "data": {"type": "array", "items": {"type": "array"}, "minItems": 1},
        },
        "required": ["columns", "data"],
    }
    formats = {
        "dataframe_split": split,
        "dataframe_records": records,
        "instances": {"oneOf": [records, columns]},
        "inputs": {"oneOf": [records, columns]},
    }
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "properties": {key: schema, "params": {"type": "object"}},
                            "required": [key],
                            "additionalProperties": False,
                        }
                        for key, schema in formats.items()
                    ]
                }
            },
            "text/csv": {"schema": {"type": "string"}},
        },
    }


def infer_body(spec: ModelSpec, ranges: dict, max_rows: int) -> dict:
    tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": list(spec.features.columns)},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": ["BYTES", "FP64", "FP32", "INT64"]},
            "data": {"type": "array", "maxItems": max_rows},
            "parameters": {"type": "object"},
        },
        "required": ["name", "shape", "datatype", "data"],
    }
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "maxLength": 128},
                        "parameters": {"type": "object"},
                        "inputs": {"type": "array", "items": tensor, "minItems": 1},
                        "outputs": {"type": "array", "items": {"type": "object"}},
                    },
                    "required": ["inputs"],
                }
            }
        },
    }


def add_offline_docs(app: FastAPI) -> None:
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )


def health_route(app: FastAPI, path: str):
    """GET (documented) and HEAD (for probes that send HEAD) on one handler."""

    def register(handler):
        app.head(path, include_in_schema=False)(handler)
        return app.get(path)(handler)

    return register
