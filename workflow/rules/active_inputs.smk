"""Input and params functions of the active-learning rules (active.smk)."""

from embrm.workflow.config import ACTIVE_STRATEGIES

ROUND_DIR = "{exp}/active/{strategy}/seed{seed}/round_{round}"
STRATEGY_PATTERN = "|".join(ACTIVE_STRATEGIES)


def active_cfg(wc):
    return cfg(wc)["active"]


def round_file(kind, exp, strategy, seed, round_index):
    """A file of one round (``kind``: pairs, ckpt or results)."""
    pattern = {
        "pairs": rules.active_select.output.pairs,
        "ckpt": rules.active_train.output.ckpt,
        "training": rules.active_train.output.summary_json,
        "results": rules.active_evaluate.output.results,
    }[kind]
    strategy = "initial" if round_index == 0 else strategy
    return pattern.format(exp=exp, strategy=strategy, seed=seed, round=round_index)


def previous_round(kind):
    """Input function: the previous round's ``kind`` file; round 1 follows round 0."""

    def path(wc):
        act, r = active_cfg(wc), int(wc.round)
        if wc.strategy not in act["strategy"] or int(wc.seed) not in act["seeds"]:
            raise WorkflowError(
                f"{wc.exp}: strategy {wc.strategy} / seed {wc.seed} is not in "
                f"active.strategy {act['strategy']} / active.seeds {act['seeds']}"
            )
        if r > act["rounds"]:
            raise WorkflowError(f"{wc.exp}: round {r} > active.rounds={act['rounds']}")
        return round_file(kind, wc.exp, wc.strategy, wc.seed, r - 1)

    return path


def curve_points(wc):
    """Every round of every configured strategy and seed of the experiment."""
    act = active_cfg(wc)
    if not act["enabled"]:
        raise WorkflowError(f"{wc.exp}: the learning curve needs active.enabled: true")
    return [
        {
            "strategy": s,
            "seed": seed,
            "round": r,
            "results": round_file("results", wc.exp, s, seed, r),
            "training": round_file("training", wc.exp, s, seed, r),
        }
        for s in act["strategy"]
        for seed in act["seeds"]
        for r in range(act["rounds"] + 1)
    ]
