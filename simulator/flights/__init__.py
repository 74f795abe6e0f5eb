"""The operational source system we ingest from: an airline-ops database with a replay clock,
and an hourly weather feed served over HTTP. Plain Python, no Dagster."""
