"""Ingestion: dlt lands each domain's declared sources (SQL databases, HTTP feeds); the contracts
publish what passes into `raw.*` tables."""
