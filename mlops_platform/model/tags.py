"""Every tag key the platform writes, defined once: on MLflow model versions (the version
record, `version.py`), on MLflow runs, and on Dagster runs (why a run was started)."""

# -- MLflow model-version tags: the version record (`VersionRecord.to_tags`) -----------------
WINDOW_PREFIX = "window."  # + train_start, train_end, holdout_start, holdout_end (ISO dates)
DATA_DIGEST = "data_digest"
TRAIN_ROWS = "train_rows"
HOLDOUT_ROWS = "holdout_rows"
MLFLOW_RUN_ID = "mlflow_run_id"
DAGSTER_RUN_ID = "dagster_run_id"
CODE_VERSION = "code_version"
SHUFFLE_LABELS = "shuffle_labels"
GATE_PASSED = "gate_passed"  # "true" | "false"; promotion still trusts only the signature
GATE_STATUS = "gate_status"  # GATE_ACCEPTED | GATE_REJECTED
GATE_FAILED_CHECKS = "gate_failed_checks"  # comma-separated check names
GATE_SUMMARY = "gate_summary"  # JSON of `GateSummary`
APPROVAL = "approval"  # APPROVAL_PENDING | APPROVAL_APPROVED
APPROVED_BY = "approved_by"
ROLLED_BACK = "rolled_back"
ROLLED_BACK_REASON = "rolled_back_reason"
#: Written by the registry when a version is stored, signed or promoted.
ARTIFACT_SHA256 = "artifact_sha256"
SBOM_SHA256 = "sbom_sha256"
SIGNATURE = "signature"
SIGNED_BY = "signed_by"
REPLACED_CHAMPION = "champion.replaced"
#: Written by the deploy guard on a new champion once it has judged it.
DEPLOY_GUARD = "deploy_guard"  # GUARD_PASSED | GUARD_ROLLED_BACK
GUARD_PASSED, GUARD_ROLLED_BACK = "passed", "rolled_back"

GATE_ACCEPTED, GATE_REJECTED = "accepted", "rejected"
APPROVAL_PENDING, APPROVAL_APPROVED = "pending", "approved"


def alias_tags(alias: str, since: str, by: str, reason: str, dagster_run_id: str) -> dict[str, str]:
    """Version tags saying when, by whom and why a version took `alias` (a mirror for people
    browsing MLflow; the audit table is the record)."""
    return {
        f"{alias}.since": since,
        f"{alias}.by": by,
        f"{alias}.reason": reason,
        f"{alias}.dagster_run_id": dagster_run_id,
    }


# -- MLflow registered-model tags: the audit log's mirror --------------------------------------
AUDIT_HEAD = "audit.head"  # "<seq>:<row hash>" of the model's newest audit row


def audit_last(alias: str) -> str:
    """Registered-model tag holding the last audited change of `alias` (JSON)."""
    return f"audit.{alias}.last"


# -- MLflow run tags (the training run) ------------------------------------------------------
RUN_MODEL_SPEC = "model_spec"
RUN_GIT_COMMIT = "mlflow.source.git.commit"

# -- Dagster run tags: why a retraining run was started (set by the retraining sensor) -------
RUN_TRIGGER = "mlops/trigger"
RUN_REASON = "mlops/reason"
RUN_MONITORED_DAY = "mlops/monitored_day"
RUN_RUNBOOK = "mlops/runbook"

# -- How MLflow's UI reads runs, versions and experiments (`registry/mlflow_ui.py`) ----------
DAGSTER_RUN_URL = "dagster_run_url"  # the Dagster run's page, a link beside its id
#: MLflow's own keys: a run's or experiment's description (Markdown), and the experiment kind
#: MLflow 3's UI opens it in (classic ML, not its GenAI view).
MLFLOW_NOTE = "mlflow.note.content"
MLFLOW_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_CLASSIC_ML = "custom_model_development"
