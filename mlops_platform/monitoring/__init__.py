"""Monitoring: Evidently drift of recent inputs and predictions, performance on late labels."""
