"""The flights domain: `domain.yaml`, its model specs and `features.py`."""
