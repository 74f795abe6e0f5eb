"""Batch scoring: each day's rows of a feature table scored by the champion, one partition a day."""
