"""The model registry (MLflow): versions, aliases, verified loading, promotion, audit, rollback."""
