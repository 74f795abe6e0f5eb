"""The HTTP floor: a FastAPI endpoint that answers /invocations without reading the model.

Served by the same uvicorn stack (uvloop, httptools) as the platform's service."""

from fastapi import FastAPI, Request, Response

app = FastAPI()
REPLY = b'{"predictions": [[0.5, 0.5]]}'


@app.get("/ping")
async def ping() -> Response:
    return Response(b"\n", media_type="application/json")


@app.post("/invocations")
async def invocations(request: Request) -> Response:
    await request.body()
    return Response(REPLY, media_type="application/json")
