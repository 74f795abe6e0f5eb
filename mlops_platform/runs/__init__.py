"""How Dagster runs are launched and watched on the local profile (see dagster.yaml)."""
