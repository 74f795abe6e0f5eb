"""Point-in-time features for the model specs, built from the validated raw tables."""
