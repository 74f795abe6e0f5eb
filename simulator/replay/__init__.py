"""The loop, replayed: what the Dagster daemon does as the clock advances, run in process."""
