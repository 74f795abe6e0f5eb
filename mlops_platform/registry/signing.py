"""OpenSSF model signing of gated versions with the pipeline's own key (offline, no Sigstore).

A version that passes its gate is signed: the signed directory is the model artifact plus
`mlops_gate.json` (model, version, source, digests, the gate summary), so the signature covers
the artifact *and* the gate result and names the version it was made for. Signature and gate
record are stored on the version's MLflow run under `signature/v<version>/`; where they live
does not matter, since nobody without the private key can make one that verifies. A tag anyone
can write (`gate_passed`, `artifact_sha256`) is never enough to serve or promote.

Keys: `MLOPS_SIGNING_KEY` (PEM, EC P-256) signs; `MLOPS_SIGNING_PUBLIC_KEY` verifies (default:
the `.pub` beside the private key). Locally both are generated on first use under
`<data dir>/signing/`; the production profile requires a provisioned key.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlops_platform.model.tags import (
    ARTIFACT_SHA256,
    GATE_PASSED,
    GATE_SUMMARY,
    SBOM_SHA256,
    SIGNATURE,
    SIGNED_BY,
)
from mlops_platform.model.version import GateSummary
from mlops_platform.settings import active_profile, data_dir

GATE_FILE = "mlops_gate.json"
SIGNATURE_FILE = "model.sig"
SIGNATURE_TAG, SIGNER_TAG = SIGNATURE, SIGNED_BY


class SignatureError(RuntimeError):
    """A version has no signature, or one that does not verify with the pipeline's key."""


class SigningKeyError(RuntimeError):
    """The pipeline's key is not configured here (an operator's fix, not a bad version)."""


@dataclass(frozen=True)
class GateRecord:
    """What the pipeline signed for a version: that it passed its gate, and with what."""

    model: str
    version: str
    source: str
    artifact_sha256: str
    sbom_sha256: str
    gate: dict
    signed_at: str

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, indent=2)


def private_key_path() -> Path:
    return Path(os.environ.get("MLOPS_SIGNING_KEY") or data_dir() / "signing" / "pipeline.key")


def public_key_path() -> Path:
    configured = os.environ.get("MLOPS_SIGNING_PUBLIC_KEY")
    return Path(configured) if configured else private_key_path().with_suffix(".pub")


def generate_key_pair(private: Path) -> None:
    """Mint an EC P-256 key at `private` (mode 0600; atomic, first process wins) — the local
    profile on first use, or an operator provisioning a deployment (`make prod-up`)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = private.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    # Atomic and first-wins: concurrent first uses never see half a key, nor two keys.
    with contextlib.suppress(FileExistsError):
        os.link(tmp, private)
    tmp.unlink()
    _write_public_key(private)


def ensure_keys() -> Path:
    """The private key's path, generating the key pair on first use in the local profile."""
    private = private_key_path()
    if not private.exists():
        if active_profile() == "production" or os.environ.get("MLOPS_SIGNING_KEY"):
            # A configured key is provisioned, never minted by whichever process runs first.
            raise SigningKeyError(
                f"signing key {private} does not exist: provision it and set MLOPS_SIGNING_KEY"
            )
        generate_key_pair(private)
    _write_public_key(private)
    return private


def _write_public_key(private: Path) -> Path:
    """`<private>.pub`, derived from the private key if missing (verifiers need only this)."""
    from cryptography.hazmat.primitives import serialization

    public = private.with_suffix(".pub")
    if not public.exists():
        key = serialization.load_pem_private_key(private.read_bytes(), None)
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return public


def key_fingerprint(public: Path) -> str:
    return hashlib.sha256(public.read_bytes()).hexdigest()[:16]


def _hashing():
    from model_signing import hashing

    # Git paths are not skipped: every file of the artifact is covered.
    return hashing.Config().set_ignored_paths(paths=[], ignore_git_paths=False)


def sign_version(registry, model: str, version: str, gate: dict) -> GateRecord:
    """Sign the version's artifact together with its gate result; store both on its run."""
    import mlflow.artifacts
    from model_signing import signing

    private = ensure_keys()
    mv = registry.client.get_model_version(model, version)
    record = GateRecord(
        model=model,
        version=str(version),
        source=mv.source,
        artifact_sha256=mv.tags.get(ARTIFACT_SHA256, ""),
        sbom_sha256=mv.tags.get(SBOM_SHA256, ""),
        gate=gate,
        signed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    registry.fluent()
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=tmp))
        (local / GATE_FILE).write_text(record.to_json())
        out = Path(tmp) / "signature"
        out.mkdir()
        signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(
            _hashing()
        ).sign(local, out / SIGNATURE_FILE)
        shutil.copy(local / GATE_FILE, out / GATE_FILE)
        registry.client.log_artifacts(mv.run_id, str(out), f"signature/v{version}")
    registry.set_version_tags(
        model,
        version,
        {
            SIGNATURE_TAG: f"signature/v{version}",
            SIGNER_TAG: key_fingerprint(private.with_suffix(".pub")),
        },
    )
    return record


def verify_signature(registry, model: str, version: str, local_model: Path) -> GateRecord:
    """Verify the downloaded artifact at `local_model` against the version's signature.

    Raises `SignatureError` unless the signature verifies with the pipeline's public key, the
    signed gate record names this very model, version and source, and its gate passed."""
    import mlflow.artifacts
    from model_signing import verifying

    public = public_key_path()
    if not public.exists():
        if os.environ.get("MLOPS_SIGNING_PUBLIC_KEY"):
            raise SigningKeyError(f"public key {public} (MLOPS_SIGNING_PUBLIC_KEY) does not exist")
        ensure_keys()  # local profile only; a missing configured key stays an error
    mv = registry.client.get_model_version(model, version)
    registry.fluent()
    with tempfile.TemporaryDirectory() as tmp:
        # Absent is a refusal; failing to reach the store is not (it propagates and is retried).
        folder = f"signature/v{version}"
        listed = {Path(a.path).name for a in registry.client.list_artifacts(mv.run_id, folder)}
        if not {SIGNATURE_FILE, GATE_FILE} <= listed:
            raise SignatureError(
                f"{model} v{version} is not signed (no complete {folder} on its run); only "
                "versions that passed the gate are signed (one gated before signing existed: "
                "`mlops model sign --version N --reason ...`)"
            )
        signature_dir = Path(
            mlflow.artifacts.download_artifacts(
                run_id=mv.run_id, artifact_path=folder, dst_path=tmp
            )
        )
        shutil.copy(signature_dir / GATE_FILE, local_model / GATE_FILE)
        try:
            verifying.Config().use_elliptic_key_verifier(public_key=public).set_hashing_config(
                _hashing()
            ).verify(local_model, signature_dir / SIGNATURE_FILE)
        except Exception as exc:  # noqa: BLE001 - every verification failure is a refusal
            raise SignatureError(
                f"{model} v{version}: signature does not verify with the pipeline's key "
                f"({public}): {type(exc).__name__}: {str(exc)[:300]}"
            ) from None
        finally:
            (local_model / GATE_FILE).unlink(missing_ok=True)
        record = GateRecord(**json.loads((signature_dir / GATE_FILE).read_text()))
    if (record.model, record.version, record.source) != (model, str(version), mv.source):
        raise SignatureError(
            f"{model} v{version}: the signature was made for {record.model} v{record.version} "
            f"({record.source}), not this version"
        )
    if record.gate.get("passed") is not True:
        raise SignatureError(f"{model} v{version}: the signed gate result is not a pass")
    return record


def record_gate(registry, model: str, version: str, summary: GateSummary) -> GateRecord | None:
    """Record a gate verdict on the version (accepted, or rejected with the failed checks); a
    pass is signed (artifact + this summary)."""
    registry.set_version_tags(model, version, summary.to_tags())
    return sign_version(registry, model, version, summary.to_dict()) if summary.passed else None


def sign_legacy(registry, model: str, version: str, signer: str, reason: str) -> GateRecord:
    """Sign a version gated before signing existed, on a person's word: its recorded gate must
    be a pass, and its artifact must match its digest and pass the layout checks."""
    tags = registry.version_tags(model, version)
    summary = json.loads(tags.get(GATE_SUMMARY) or "{}")
    if tags.get(GATE_PASSED) != "true" or not summary.get("passed"):
        raise SignatureError(f"{model} v{version} has no recorded gate pass: run the gate")
    with registry.verified_download(model, version, signed=False):
        pass  # digest and layout
    return sign_version(
        registry, model, version, {**summary, "signed_later_by": signer, "reason": reason}
    )
