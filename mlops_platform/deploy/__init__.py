"""The production deployment: process list, generated configuration, a supervisor."""
