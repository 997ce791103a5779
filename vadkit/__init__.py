"""vadkit: weakly-supervised video anomaly detection from videos to per-frame scores."""

__version__ = "0.1.0"
