"""Data contracts: Great Expectations suites per raw table, run as blocking asset checks.

A failing batch stops everything downstream; its offending rows are moved to `quarantine.<table>`
with the reason, never silently dropped."""
