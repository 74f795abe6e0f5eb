"""Ingestion: dlt loads the flight-ops database and the weather feed into `raw.*` tables."""
