"""embrm: embedding-based reward-model research (ORM ensembles, calibration, distillation)."""

__version__ = "0.1.0"
