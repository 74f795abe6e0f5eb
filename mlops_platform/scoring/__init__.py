"""Batch scoring: each day's scheduled flights scored by the champion, one partition a day."""
