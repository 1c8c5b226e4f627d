"""embrm: embedding-based reward-model research (ORM ensembles, calibration, distillation)."""

__version__ = "0.1.0"


def __getattr__(name):
    # the reward model pulls in torch and transformers: load it only when asked for
    if name == "RewardModel":
        from embrm.serve.model import RewardModel

        return RewardModel
    raise AttributeError(f"module 'embrm' has no attribute {name!r}")
