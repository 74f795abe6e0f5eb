"""The serving API over real HTTP: real uvicorn, real MLflow registry, real skops artifacts."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest

from mlops_platform.http_server import BackgroundServer
from mlops_platform.registry.promotion import audit_log, promote
from mlops_platform.registry.store import CHAMPION, ModelRegistry
from mlops_platform.serving.app import create_app
from mlops_platform.serving.predictionlog import read_log
from mlops_platform.serving.settings import ServingSettings
from mlops_platform_tests import serving_support
from mlops_platform_tests.serving_support import ROW, SPEC, TOKEN, serve, wait_ready, wait_until

models, stack = serving_support.models, serving_support.stack  # fixtures


def test_mlflow_scoring_client_and_every_input_format(stack):
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    with serve(stack) as server:
        wait_ready(server.url)
        host, port = server.url.rsplit(":", 1)
        client = ScoringServerClient(host.replace("http://", ""), int(port))
        import pandas as pd

        reply = client.invoke(pd.DataFrame([ROW, {**ROW, "carrier": "ZZ"}]))
        predictions = np.asarray(reply.get_predictions())
        assert predictions.shape == (2, 2)
        np.testing.assert_allclose(predictions.sum(axis=1), 1.0)

        url = f"{server.url}/invocations"
        split = {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())]}}
        bodies = [
            split,
            {"dataframe_records": [ROW]},
            {"instances": [ROW]},
            {"inputs": {k: [v] for k, v in ROW.items()}},
        ]
        answers = [httpx.post(url, json=body).json()["predictions"] for body in bodies]
        csv = ",".join(ROW) + "\n" + ",".join("" if v is None else str(v) for v in ROW.values())
        answers.append(
            httpx.post(url, content=csv, headers={"content-type": "text/csv"}).json()["predictions"]
        )
        assert all(a == answers[0] for a in answers), answers
        assert answers[0][0][1] == pytest.approx(predictions[0][1])

        assert httpx.get(f"{server.url}/version").text.startswith("3.")
        both = httpx.post(url, json={"dataframe_records": [ROW], "instances": [ROW]})
        assert both.status_code == 400 and both.json()["error_code"] == "BAD_REQUEST"
        assert "exactly one" in both.json()["message"]


def test_open_inference_protocol_client(stack):
    import tritonclient.http as triton

    with serve(stack) as server:
        wait_ready(server.url)
        client = triton.InferenceServerClient(server.url.replace("http://", ""))
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(SPEC.name)
        metadata = client.get_model_metadata(SPEC.name)
        assert {i["name"] for i in metadata["inputs"]} == set(SPEC.features.columns)
        inputs = []
        for name in SPEC.features.columns:
            categorical = name in SPEC.features.categorical
            value = ROW[name]
            data = np.array(
                [value if categorical else (np.nan if value is None else value)] * 3,
                dtype=object if categorical else np.float64,
            )
            tensor = triton.InferInput(name, [3], "BYTES" if categorical else "FP64")
            tensor.set_data_from_numpy(data, binary_data=False)
            inputs.append(tensor)
        result = client.infer(
            SPEC.name, inputs, outputs=[triton.InferRequestedOutput("score", binary_data=False)]
        )
        scores = result.as_numpy("score")
        assert scores.shape == (3,) and 0 < scores[0] < 1
        assert result.get_response()["model_version"] == "1"
        assert httpx.get(f"{server.url}/v2/models/other").status_code == 404


def test_typed_predict_with_curl_and_bad_inputs(stack):
    with serve(stack, max_body_bytes=20_000) as server:
        wait_ready(server.url)
        done = subprocess.run(
            [
                "curl",
                "-s",
                "-X",
                "POST",
                f"{server.url}/predict",
                "-H",
                "content-type: application/json",
                "-d",
                json.dumps(ROW),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        body = json.loads(done.stdout)
        assert body["model"] == SPEC.name and body["version"] == "1"
        assert body["alias"] == "champion" and isinstance(body["decision"], bool)
        assert httpx.get(f"{server.url}/openapi.json").json()["paths"]["/predict"]

        missing = httpx.post(
            f"{server.url}/predict", json={k: v for k, v in ROW.items() if k != "origin"}
        )
        assert missing.status_code == 422
        assert missing.json()["detail"][0]["loc"] == ["body", "origin"]
        mistyped = httpx.post(f"{server.url}/predict", json={**ROW, "distance": "far"})
        assert mistyped.status_code == 422 and mistyped.json()["detail"][0]["loc"][-1] == "distance"
        unknown = httpx.post(f"{server.url}/predict", json={**ROW, "carrier": "NEW", "dest": "X"})
        assert unknown.status_code == 200 and 0 < unknown.json()["score"] < 1

        big = httpx.post(f"{server.url}/invocations", json={"dataframe_records": [ROW] * 200})
        assert big.status_code == 413 and big.json()["error_code"] == "REQUEST_TOO_LARGE"
        wrong = httpx.post(
            f"{server.url}/invocations", content=b"x", headers={"content-type": "application/xml"}
        )
        assert wrong.status_code == 415
        broken = httpx.post(
            f"{server.url}/invocations",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert broken.status_code == 400 and "invalid JSON" in broken.json()["message"]
        no_column = httpx.post(
            f"{server.url}/invocations", json={"dataframe_records": [{"carrier": "UA"}]}
        )
        assert no_column.status_code == 400 and "missing column" in no_column.json()["message"]

        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'http_requests_total{method="POST",route="/predict",status="422"}' in metrics
        assert 'model_version_info{alias="champion",model="flight_delay",version="1"}' in metrics
        assert "http_request_duration_seconds_bucket" in metrics
        assert "model_batch_rows_bucket" in metrics and "prediction_score_bucket" in metrics


def test_admin_routes_need_the_token_and_rollback_is_audited(stack):
    registry, warehouse, _ = stack
    promote(registry, warehouse, SPEC.name, "2", reason="test", actor="test", run_id="test")
    with serve(stack) as server:
        wait_ready(server.url)
        wait_until(
            lambda: httpx.post(f"{server.url}/predict", json=ROW).json()["version"] == "2",
            "v2 answering after the promotion",
        )
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
            denied = httpx.post(
                f"{server.url}/admin/rollback", json={"reason": "bad model"}, headers=headers
            )
            assert denied.status_code == 401
            assert TOKEN not in denied.text
        assert registry.alias_version(SPEC.name, CHAMPION) == "2"

        ok = httpx.post(
            f"{server.url}/admin/rollback",
            json={"reason": "bad model"},
            headers={"authorization": f"Bearer {TOKEN}"},
            timeout=120,  # it loads and verifies v1: a bound for a hang on a busy machine
        )
        assert ok.status_code == 200 and ok.json()["champion"] == "1"
        assert registry.alias_version(SPEC.name, CHAMPION) == "1"
        assert httpx.post(f"{server.url}/predict", json=ROW).json()["version"] == "1"
        last = audit_log(warehouse, SPEC.name).iloc[-2]
        assert last["actor"] == "serving-admin" and last["reason"] == "rollback: bad model"

    with serve(stack, admin_token="") as server:  # no token configured: admin is off
        wait_ready(server.url)
        anyone = httpx.post(f"{server.url}/admin/reload", headers={"authorization": "Bearer x"})
        assert anyone.status_code == 401


def test_hot_swap_under_load_drops_nothing(stack):
    registry, warehouse, _ = stack
    with serve(stack) as server:
        wait_ready(server.url)
        versions, failures, stop = [], [], threading.Event()

        def hammer():
            with httpx.Client() as client:
                while not stop.is_set():
                    reply = client.post(f"{server.url}/predict", json=ROW)
                    if reply.status_code != 200:
                        failures.append(reply.status_code)
                    else:
                        versions.append(reply.json()["version"])

        workers = [threading.Thread(target=hammer) for _ in range(4)]
        for worker in workers:
            worker.start()
        wait_until(lambda: len(versions) >= 25, "25 answers from v1 before the swap")
        promote(registry, warehouse, SPEC.name, "2", reason="swap", actor="test", run_id="t")
        wait_until(lambda: versions[-1] == "2", "v2 answering after the promotion")
        swapped_at = len(versions)
        wait_until(lambda: len(versions) >= swapped_at + 25, "25 more answers after the swap")
        stop.set()
        for worker in workers:
            worker.join()
    assert not failures
    assert versions[0] == "1" and versions[-1] == "2" and len(versions) > 50
    # Four clients finish in any order around the swap; once it is done only v2 answers.
    assert set(versions[-20:]) == {"2"}


def test_shadow_and_prediction_log_and_feedback(stack):
    _, _, tmp = stack
    with serve(stack) as server:
        wait_ready(server.url)
        wait_until(
            lambda: "challenger" in httpx.get(f"{server.url}/metrics").text,
            "the challenger loaded (in /metrics)",
        )
        ids = [httpx.post(f"{server.url}/predict", json=ROW).json()["request_id"] for _ in range(5)]
        # large requests are logged as arrays and repeated values (1,030 rows: a last chunk of
        # 6), every row, in order
        for rows in (40, 1000, 1030):
            data = [[*ROW.values()] for _ in range(rows)]
            for i, row in enumerate(data):
                row[list(ROW).index("distance")] = 100 + i
            reply = httpx.post(
                f"{server.url}/invocations",
                json={"dataframe_split": {"columns": list(ROW), "data": data}},
                headers={"x-request-id": f"large-{rows}"},
            )
            assert reply.status_code == 200 and len(reply.json()["predictions"]) == rows
        feedback = httpx.post(
            f"{server.url}/feedback",
            json={
                "year": 2013,
                "month": 2,
                "day": 9,
                "carrier": "UA",
                "flight": 1545,
                "origin": "EWR",
                "arr_delay": 22.0,
                "request_id": ids[0],
            },
        )
        assert feedback.status_code == 202
    logged = read_log(tmp / "serving" / "predictions")  # written on shutdown at the latest
    mine = logged[logged["request_id"].isin(ids)]
    assert len(mine) == 5
    assert set(mine["alias"]) == {"champion"} and set(mine["model_version"]) == {"1"}
    assert set(mine["shadow_version"]) == {"2"} and mine["shadow_score"].notna().all()
    assert (mine["score"] != mine["shadow_score"]).all()
    assert (mine["carrier"] == "UA").all() and (mine["distance"] == 1400).all()
    for rows in (40, 1000, 1030):
        large = logged[logged["request_id"] == f"large-{rows}"]
        assert list(large["row"]) == list(range(rows))
        assert list(large["distance"]) == [100.0 + i for i in range(rows)]
        assert set(large["route"]) == {"invocations"} and set(large["alias"]) == {"champion"}
        assert set(large["shadow_version"]) == {"2"} and large["shadow_score"].notna().all()
        assert (large["carrier"] == "UA").all() and large["wind_gust"].isna().all()
        assert large["ts"].notna().all() and large["score"].between(0, 1).all()
    truth = read_log(tmp / "serving" / "feedback")
    assert list(truth["request_id"]) == [ids[0]] and truth["arr_delay"].iloc[0] == 22.0


def test_canary_routes_to_the_challenger(stack):
    with serve(stack, canary_percent=100) as server:
        wait_ready(server.url)
        wait_until(
            lambda: httpx.post(f"{server.url}/predict", json=ROW).json()["alias"] == "challenger",
            "the canary routing to the challenger",
        )
        reply = httpx.post(f"{server.url}/predict", json=ROW).json()
        assert reply["alias"] == "challenger" and reply["version"] == "2"


def test_registry_down_at_start_then_later(stack, caplog):
    registry, warehouse, tmp = stack
    # The registry's database sits under a path that cannot exist yet (its parent is a file):
    # every connection fails, as with a registry server that is down.
    blocker = tmp / "registry"
    blocker.write_text("not a directory")
    down = ModelRegistry(f"sqlite:///{blocker / 'mlflow.db'}", registry.artifact_root)
    settings = ServingSettings(
        admin_token=TOKEN,
        poll_seconds=0.2,
        retry_seconds=0.2,
        log_dir=str(tmp / "serving"),
        breaker_reset_seconds=0.5,
    )
    caplog.set_level("WARNING", logger="mlops.serving")
    with BackgroundServer(create_app(settings, down, warehouse)) as server:

        def waiting() -> int:
            return sum("waiting for a champion" in r.getMessage() for r in caplog.records)

        # The service retries, and says so each time; meanwhile it answers 503.
        wait_until(lambda: waiting() >= 2, "two 'waiting for a champion' retries logged")
        assert httpx.get(f"{server.url}/ping").status_code == 503
        assert httpx.post(f"{server.url}/predict", json=ROW).status_code == 503
        blocker.unlink()  # the registry comes up
        blocker.mkdir()
        shutil.copy(tmp / "mlflow.db", blocker / "mlflow.db")
        wait_ready(server.url, timeout=20)
        assert httpx.post(f"{server.url}/predict", json=ROW).json()["version"] == "1"

        # The registry breaks later: the loaded champion keeps serving.
        def failed_checks() -> int:
            return sum("registry check failed" in r.getMessage() for r in caplog.records)

        before = failed_checks()
        (blocker / "mlflow.db").write_bytes(b"garbage" * 1000)
        # Three consecutive failures (the breaker's default) open the circuit; after that it is
        # open or half-open, never closed, until a look-up succeeds.
        wait_until(
            lambda: failed_checks() >= before + settings.breaker_failures,
            "enough failed registry checks to open the circuit",
        )
        for _ in range(5):
            assert httpx.post(f"{server.url}/predict", json=ROW).status_code == 200
        state = httpx.post(
            f"{server.url}/admin/reload", headers={"authorization": f"Bearer {TOKEN}"}, timeout=120
        ).json()
        assert state["champion"] == "1" and state["registry_error"]
        # Failed look-ups opened the registry circuit: it is not called on every poll.
        assert state["registry_circuit"] != "closed"


def test_a_tampered_champion_is_never_served(stack, caplog):
    registry, warehouse, tmp = stack
    caplog.set_level("ERROR", logger="mlops.serving")
    source = registry.client.get_model_version(SPEC.name, "1").source
    model_id = source.split("/")[-1]
    (skops_file,) = Path(registry.artifact_root).rglob(f"{model_id}/artifacts/model.skops")
    original = skops_file.read_bytes()
    skops_file.write_bytes(original + b"tampered")
    try:
        with serve(stack) as server:
            wait_until(
                lambda: any("not verified" in r.getMessage() for r in caplog.records),
                "the tampered champion refused",
            )
            assert httpx.get(f"{server.url}/ping").status_code == 503
            assert httpx.post(f"{server.url}/predict", json=ROW).status_code == 503
    finally:
        skops_file.write_bytes(original)


def test_sigterm_drains_the_prediction_log(stack):
    registry, warehouse, tmp = stack
    import os
    import signal
    import sys

    env = {
        **os.environ,
        "MLOPS_SERVING_POLL_SECONDS": "60",
        "MLOPS_PREDICTION_LOG_DIR": str(tmp / "drain"),
    }
    script = (
        "import sys, uvicorn\n"
        "from mlops_platform.registry.store import ModelRegistry\n"
        "from mlops_platform.serving.app import create_app\n"
        "from mlops_platform.warehouse import DuckDBStore\n"
        f"registry = ModelRegistry({registry.tracking_uri!r}, {registry.artifact_root!r})\n"
        f"warehouse = DuckDBStore(path={warehouse.database_path!r})\n"
        "uvicorn.run(create_app(None, registry, warehouse), host='127.0.0.1', "
        "port=int(sys.argv[1]), log_level='warning')\n"
    )
    from mlops_platform.http_server import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", script, str(port)], env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}", timeout=300)  # a hang bound, not a budget
        with httpx.Client() as client:
            for _ in range(200):
                assert client.post(f"http://127.0.0.1:{port}/predict", json=ROW).status_code == 200
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
    assert len(read_log(tmp / "drain" / "predictions")) == 200


def test_requests_after_the_scoring_closed_get_a_503_not_a_500(stack):
    """Shutdown: once `Scoring.close` ran (the lifespan's end; its parse pool is shut down), a
    request still arriving is refused with a 503 saying why, whichever route and size: a
    large body used to reach the closed pool and answer 500."""
    with serve(stack) as server:
        wait_ready(server.url)
        app = server._server.config.app
        app.routes[("POST", "/invocations")].scoring.close()  # as the lifespan does
        large = {"dataframe_records": [ROW] * 200}  # parsed on the (closed) parse pool
        assert len(json.dumps(large)) > 64_000
        with httpx.Client(base_url=server.url) as client:
            for body in (large, {"dataframe_records": [ROW]}):
                reply = client.post("/invocations", json=body)
                assert reply.status_code == 503, reply.text
                assert reply.json()["error_code"] == "SERVICE_UNAVAILABLE"
                assert "shutting down" in reply.json()["message"]
            reply = client.post("/predict", json=ROW)
            assert reply.status_code == 503 and "shutting down" in reply.text
            infer = {
                "inputs": [
                    {
                        "name": name,
                        "shape": [1],
                        "datatype": "BYTES" if name in SPEC.features.categorical else "FP64",
                        "data": [value],
                    }
                    for name, value in ROW.items()
                ]
            }
            reply = client.post(f"/v2/models/{SPEC.name}/infer", json=infer)
            assert reply.status_code == 503 and "shutting down" in reply.text
