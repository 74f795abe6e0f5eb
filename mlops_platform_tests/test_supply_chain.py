"""Model supply chain, for real: crafted artifacts, forged versions and signatures, SBOMs.

The registry is the real MLflow store (SQLite) with a version trained, gated and signed by the
pipeline's key (`signed_model` in conftest); attackers here have write access to the registry
(they register versions, copy tags and signatures, set aliases) but not the private key.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
import yaml

from mlops_platform.model.version import GateSummary
from mlops_platform.registry.artifact import (
    UnsafeArtifactError,
    UntrustedTypesError,
    check_model_dir,
)
from mlops_platform.registry.promotion import PromotionRefused, admit_challenger, promote
from mlops_platform.registry.signing import SignatureError, record_gate, sign_version
from mlops_platform.registry.store import ModelRegistry, directory_sha256
from mlops_platform_tests.registry_helpers import NAME, clone_version
from mlops_platform_tests.serving_support import wait_until
from mlops_platform_tests.test_serving_api import ROW

TOKEN = "supply-token"


# -- A. nothing from an artifact runs before it is verified -----------------------------------
SKOPS_OK = {
    "pickled_model": "model.skops",
    "serialization_format": "skops",
    "skops_trusted_types": ["functools.partial"],
}


def _mlmodel(tmp: Path, sklearn: dict | None = None, top: dict | None = None, pyfunc=None):
    tmp.mkdir(exist_ok=True)
    (tmp / "model.skops").write_bytes(b"not read by the layout check")
    flavors = {"sklearn": {**SKOPS_OK, **(sklearn or {})}}
    flavors["python_function"] = {"model_path": "model.skops", **(pyfunc or {})}
    (tmp / "MLmodel").write_text(yaml.safe_dump({"flavors": flavors, **(top or {})}))
    return tmp


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ({"top": {"code": "code"}}, UnsafeArtifactError, "ships code"),
        ({"pyfunc": {"code": "code"}}, UnsafeArtifactError, "ships code"),
        ({"sklearn": {"code": "src"}}, UnsafeArtifactError, "ships code"),
        ({"sklearn": {"pickled_model": "/etc/hostname"}}, UnsafeArtifactError, "absolute"),
        ({"sklearn": {"pickled_model": "../model.skops"}}, UnsafeArtifactError, "leaves"),
        ({"pyfunc": {"model_path": "a/../../x"}}, UnsafeArtifactError, "leaves"),
        ({"link": "model.skops"}, UnsafeArtifactError, "symlink"),
        ({"link": "code"}, UnsafeArtifactError, "symlink"),
        ({"sklearn": {"serialization_format": "pickle"}}, UntrustedTypesError, "not skops"),
        ({"sklearn": {"skops_trusted_types": ["builtins.eval"]}}, UntrustedTypesError, "eval"),
        ({"raw": "flavors: [unclosed"}, UnsafeArtifactError, "not valid YAML"),
        ({"raw": "flavors: {python_function: {}}"}, UnsafeArtifactError, "no sklearn"),
    ],
)
def test_artifact_layout_is_refused(tmp_path, case, error, message):
    root = _mlmodel(tmp_path / "m", case.get("sklearn"), case.get("top"), case.get("pyfunc"))
    if "link" in case:
        target = root / case["link"]
        target.unlink(missing_ok=True)
        target.symlink_to("/etc" if case["link"] == "code" else "/etc/hostname")
    if "raw" in case:
        (root / "MLmodel").write_text(case["raw"])
    with pytest.raises(error, match=message):
        check_model_dir(root)


def test_artifact_layout_accepts_a_plain_skops_model(tmp_path):
    assert check_model_dir(_mlmodel(tmp_path / "m"))["pickled_model"] == "model.skops"
    (tmp_path / "m" / "evil").symlink_to("/etc/hostname")
    with pytest.raises(UnsafeArtifactError, match="symlink"):
        directory_sha256(tmp_path / "m")


def _ship_code(marker: Path):
    """An artifact edit: a `code:` folder whose `skops` package writes `marker` on import
    (MLflow's loader puts `code:` first on sys.path, then imports skops)."""

    def edit(local: Path) -> None:
        package = local / "code" / "skops"
        package.mkdir(parents=True)
        payload = f"open({str(marker)!r}, 'w').write('ran')\n"
        (package / "__init__.py").write_text(payload)
        (package / "io.py").write_text(payload)
        config = yaml.safe_load((local / "MLmodel").read_text())
        config["flavors"]["python_function"]["code"] = "code"
        config["flavors"]["sklearn"]["code"] = "code"
        (local / "MLmodel").write_text(yaml.safe_dump(config))

    return edit


def test_code_shipped_in_an_artifact_never_runs(signed_registry, tmp_path):
    registry, warehouse = signed_registry
    marker = tmp_path / "marker"
    version = clone_version(registry, edit=_ship_code(marker))
    # Sign it with the pipeline's own key too: the layout check must not rely on the signature.
    record_gate(registry, NAME, version, GateSummary(passed=True, challenger=version))
    for signed in (False, True):
        with pytest.raises(UnsafeArtifactError, match="ships code"):
            registry.load_verified(NAME, version, signed=signed)
    with pytest.raises(PromotionRefused, match="ships code"):
        promote(registry, warehouse, NAME, version, reason="x", actor="t", run_id="t")
    assert not marker.exists()
    assert "site-packages" in sys.modules["skops"].__file__

    # The same artifact through MLflow's own loader (another process) does run the code:
    # the refusal above is what stands between it and this process.
    source = registry.client.get_model_version(NAME, version).source
    script = (
        "import mlflow, mlflow.sklearn, sys\n"
        f"mlflow.set_tracking_uri({registry.tracking_uri!r})\n"
        f"path = mlflow.artifacts.download_artifacts(artifact_uri={source!r})\n"
        "try:\n    mlflow.sklearn.load_model(path)\nexcept Exception:\n    pass\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300, capture_output=True)
    assert marker.read_text() == "ran"


# -- B. signatures: forged versions are never served nor promoted ----------------------------
def _copy_signature(registry: ModelRegistry, source: str, target: str) -> None:
    """The attacker copies every tag and the real signature files onto a forged version."""
    mlflow = registry.fluent()
    real = registry.client.get_model_version(NAME, source)
    forged = registry.client.get_model_version(NAME, target)
    registry.set_version_tags(NAME, target, dict(real.tags))
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=real.run_id, artifact_path=f"signature/v{source}", dst_path=tmp
        )
        registry.client.log_artifacts(forged.run_id, local, f"signature/v{target}")


def _attacker_signs(registry: ModelRegistry, version: str, key_dir: Path, monkeypatch) -> None:
    """A valid OpenSSF signature, gate record and all, made with someone else's key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key_dir.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    (key_dir / "a.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with monkeypatch.context() as patch:
        patch.setenv("MLOPS_SIGNING_KEY", str(key_dir / "a.key"))
        patch.delenv("MLOPS_PROFILE", raising=False)
        (key_dir / "a.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        sign_version(registry, NAME, version, {"passed": True})
    registry.set_version_tags(NAME, version, {"gate_passed": "true"})


def _admin(url: str, route: str) -> dict:
    # A reload loads and verifies a version: the timeout bounds a hang on a busy machine.
    return httpx.post(
        f"{url}{route}", headers={"authorization": f"Bearer {TOKEN}"}, timeout=120
    ).json()


def test_forged_versions_are_never_served_nor_promoted(
    signed_registry, tmp_path, monkeypatch, caplog
):
    from mlops_platform.http_server import BackgroundServer
    from mlops_platform.serving.app import create_app
    from mlops_platform.serving.settings import ServingSettings

    registry, warehouse = signed_registry
    copied = clone_version(registry)  # v2: v1 re-uploaded, with v1's tags and signature
    _copy_signature(registry, "1", copied)
    attacker = clone_version(registry)  # v3: signed, but not with the pipeline's key
    _attacker_signs(registry, attacker, tmp_path / "attacker", monkeypatch)
    unsigned = clone_version(registry)  # v4: gate tags written by hand, never signed
    registry.set_version_tags(NAME, unsigned, {"gate_passed": "true"})
    reasons = {
        copied: "made for flight_delay v1",
        attacker: "does not verify",
        unsigned: "is not signed",
    }
    for version, reason in reasons.items():
        with pytest.raises(SignatureError, match=reason):
            registry.load_verified(NAME, version)
        for move in (promote, admit_challenger):
            kwargs = {"reason": "x", "actor": "t"} if move is promote else {}
            with pytest.raises(PromotionRefused, match=reason):
                move(registry, warehouse, NAME, version, run_id="t", **kwargs)

    settings = ServingSettings(
        admin_token=TOKEN, poll_seconds=3600, retry_seconds=0.2, log_dir=str(tmp_path / "log")
    )
    with BackgroundServer(create_app(settings, registry, warehouse)) as server:
        wait_until(
            lambda: httpx.get(f"{server.url}/ping").status_code == 200,
            "the signed champion served",
            120,
        )
        for version, reason in reasons.items():
            # Set by hand in MLflow, as anyone with registry access could.
            registry.set_alias(NAME, "champion", version)
            registry.set_alias(NAME, "challenger", version)
            with caplog.at_level("ERROR", logger="mlops.serving"):
                state = _admin(server.url, "/admin/reload")
            assert state["champion"] == "1" and state["challenger"] is None, state
            health = httpx.get(f"{server.url}/health").json()
            assert health["champion"] == "1"
            assert health["refused"]["champion"]["version"] == version
            assert reason in health["refused"]["champion"]["reason"]
            assert health["refused"]["challenger"]["version"] == version
            assert f"refusing champion flight_delay v{version}" in caplog.text
            assert httpx.post(f"{server.url}/predict", json=ROW).json()["version"] == "1"
            metrics = httpx.get(f"{server.url}/metrics").text
            assert f'model_refused_total{{alias="champion",version="{version}"}} 1.0' in metrics

        # A real gated version (signed by the pipeline) is served once promoted.
        good = clone_version(registry)
        record_gate(registry, NAME, good, GateSummary(passed=True, challenger=good))
        registry.set_alias(NAME, "champion", "1")
        promote(registry, warehouse, NAME, good, reason="gated", actor="t", run_id="t")
        state = _admin(server.url, "/admin/reload")
        assert state["champion"] == good and "champion" not in state["refused"]
        assert httpx.get(f"{server.url}/health").json()["refused"].get("champion") is None


def test_signature_covers_the_gate_result(signed_registry):
    registry, _ = signed_registry
    mlflow = registry.fluent()
    version = clone_version(registry)  # its own run: the shared v1 stays intact
    record_gate(
        registry,
        NAME,
        version,
        GateSummary(passed=True, challenger=version, metrics={"roc_auc": 0.61}),
    )
    real = registry.client.get_model_version(NAME, version)
    registry.load_verified(NAME, version)  # intact: verifies
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(
                run_id=real.run_id, artifact_path=f"signature/v{version}", dst_path=tmp
            )
        )
        record = json.loads((local / "mlops_gate.json").read_text())
        assert record["gate"]["passed"] is True and record["version"] == version
        assert record["artifact_sha256"] == real.tags["artifact_sha256"]
        record["gate"]["metrics"]["roc_auc"] = 0.99  # a better-looking gate result
        (local / "mlops_gate.json").write_text(json.dumps(record))
        registry.client.log_artifacts(real.run_id, str(local), f"signature/v{version}")
    with pytest.raises(SignatureError, match="does not verify"):
        registry.load_verified(NAME, version)
    # The gate's own record names the SBOM of the software that trained the version.
    assert registry.version_tags(NAME, "1")["sbom_sha256"] in json.dumps(
        _signed_record(registry, "1")
    )


def _signed_record(registry: ModelRegistry, version: str) -> dict:
    with registry.verified_download(NAME, version) as (_, record):
        return record.__dict__


# -- C. every version names the software that trained it ------------------------------------
def test_every_version_carries_its_sbom(signed_registry):
    from importlib.metadata import version as installed

    registry, _ = signed_registry
    mv = registry.client.get_model_version(NAME, "1")
    path = registry.client.download_artifacts(mv.run_id, "sbom/environment.cdx.json")
    text = Path(path).read_text()
    assert hashlib.sha256(text.encode()).hexdigest() == mv.tags["sbom_sha256"]
    bom = json.loads(text)
    assert (bom["bomFormat"], bom["specVersion"]) == ("CycloneDX", "1.6")
    versions = {c["name"]: c["version"] for c in bom["components"]}
    for package in ("scikit-learn", "skops", "mlflow", "numpy", "pandas"):
        assert versions[package] == installed(package)
    assert f"pkg:pypi/scikit-learn@{installed('scikit-learn')}" in {
        c["purl"] for c in bom["components"]
    }


def test_versions_gated_before_signing_are_signed_only_on_request(signed_registry, capsys):
    from mlops_platform.cli import main

    registry, _ = signed_registry
    legacy = clone_version(registry)  # as the platform left it before signing existed
    summary = registry.version_tags(NAME, "1")["gate_summary"]
    registry.set_version_tags(NAME, legacy, {"gate_passed": "true", "gate_summary": summary})
    with pytest.raises(SignatureError, match="mlops model sign"):
        registry.load_verified(NAME, legacy)
    never_gated = clone_version(registry)
    with pytest.raises(SystemExit, match="no recorded gate pass"):
        main(["model", "sign", "--version", never_gated, "--reason", "trust me"])
    with pytest.raises(SystemExit, match="reason is required"):
        main(["model", "sign", "--version", legacy])
    registry.set_alias(NAME, "challenger", legacy)
    main(["model", "status"])
    assert f"challenger         {legacy}  NOT VERIFIED" in capsys.readouterr().out
    main(["model", "sign", "--version", legacy, "--reason", "gated in 2013", "--actor", "ana"])
    assert "signed by the pipeline's key (ana)" in capsys.readouterr().out
    main(["model", "status"])
    assert f"challenger         {legacy}  signed, verified" in capsys.readouterr().out
    with registry.verified_download(NAME, legacy) as (_, record):
        assert record.gate["signed_later_by"] == "ana" and record.gate["passed"] is True


def test_keys_are_made_locally_and_provisioned_in_production(data_dir, monkeypatch):
    from mlops_platform.registry.signing import SigningKeyError, ensure_keys, key_fingerprint

    monkeypatch.delenv("MLOPS_SIGNING_KEY", raising=False)
    monkeypatch.setenv("MLOPS_PROFILE", "production")
    with pytest.raises(SigningKeyError, match="MLOPS_SIGNING_KEY"):
        ensure_keys()
    monkeypatch.setenv("MLOPS_PROFILE", "local")
    private = ensure_keys()
    assert private == data_dir / "signing" / "pipeline.key"
    assert private.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert ensure_keys() == private and len(key_fingerprint(private.with_suffix(".pub"))) == 16
    monkeypatch.setenv("MLOPS_SIGNING_KEY", str(data_dir / "elsewhere.key"))
    with pytest.raises(SigningKeyError, match="provision it"):
        ensure_keys()  # a configured path is never minted
