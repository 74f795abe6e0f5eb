"""Retention: how long logs, quarantined rows and reports are kept, enforced by a daily job."""
