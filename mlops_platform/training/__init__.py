"""Training: time-split the labelled features, fit a scikit-learn pipeline, track it in MLflow."""
