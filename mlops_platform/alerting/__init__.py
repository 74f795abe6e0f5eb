"""Alerting: failed runs raise an incident (warehouse record) and a webhook call, each naming
the runbook to follow."""
