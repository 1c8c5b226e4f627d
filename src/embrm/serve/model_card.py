"""The bundle's README.md: what the reward model was trained on, how well it did, where
it may be used."""

from __future__ import annotations

import json

import yaml

METRICS = ("global_spearman", "per_prompt_spearman", "pairwise_accuracy", "mse")


def run_description(config: dict) -> dict:
    """Task, objective and a one-line description of a generated run's data (a
    completed config), for the model card."""
    gen = config["generation"]
    golden = gen["golden"]["models"][config["task"]]["model"]
    return {
        "task": config["task"],
        "objective": config["orm"]["objective"],
        "data": (
            f"Policy `{gen['policy']}`, prompts from `{gen['prompts']['source']}` "
            f"({gen['prompts']['max_train_prompts']} train / "
            f"{gen['prompts']['max_test_prompts']} test prompts at most, "
            f"{gen['sampling']['k_train']} / {gen['sampling']['k_test']} responses each), "
            f"golden reward model `{golden}`; "
            f"ORM pairs from {config['orm']['n_sample']} train prompts, annotation quality "
            f"{config['orm']['annotation_quality']}."
        ),
    }


def ratings_description(config: dict) -> dict:
    """Task and a one-line description of the rated responses, for a multi-objective
    bundle's config."""
    ratings = config["data"]["ratings"]
    return {
        "task": config["task"],
        "data": (
            f"Rated responses from `{ratings['source']}`, attributes "
            f"{', '.join(ratings['attributes'])}; gating pairs by {ratings['pair_recipe']} "
            f"of {ratings['preference'] or 'the mean of the attributes'}."
        ),
    }


def cell(m: dict, key: str) -> str:
    """One metric of a variant; null (undefined, e.g. a correlation of constant scores,
    see the validation file's ``null_reasons``) is written as such."""
    if key == "mse" and not m["mse_meaningful"]:
        return "n/a (raw scale)"
    return "undefined" if m[key] is None else f"{m[key]:.4f}"


def validation_table(validation: dict) -> str:
    """Step 8's four variants as a markdown table (MSE only where it is meaningful)."""
    rows = ["| variant | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
    for name, m in validation["variants"].items():
        cells = [cell(m, k) for k in METRICS]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


HEAD_METRICS = ("mse", "within_prompt_ties", "pairwise_accuracy", "per_prompt_spearman")
# embedder names of the config that stand for a hub model
HUB_NAMES = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}


def heads_table(held_out: dict) -> str:
    """Every head on the held-out prompts: calibration error (MSE), ties, ranking."""
    rows = ["| head | " + " | ".join(HEAD_METRICS) + " |", "|---" * (len(HEAD_METRICS) + 1) + "|"]
    for name, m in held_out["heads"].items():
        cells = ["n/a (raw scale)" if m[k] is None else f"{m[k]:.4f}" for k in HEAD_METRICS]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def base_model(name: str) -> str | None:
    """The hub id of the embedder, if it has one (a built model or a local folder has not)."""
    if name in HUB_NAMES:
        return HUB_NAMES[name]
    owner, _, model = name.partition("/")
    return name if owner and model and "/" not in model and not name.startswith(".") else None


def front_matter(config: dict, held_out: dict) -> str:
    """Hugging Face model-card metadata (YAML between ``---`` lines): the default head's
    held-out metrics."""
    default = held_out["heads"][config["default_head"]]
    meta = {
        "library_name": "embrm",
        "tags": ["reward-model", "rlhf", "embeddings", config["task"]],
        "model-index": [
            {
                "name": f"embrm-reward-model-{config['task']}",
                "results": [
                    {
                        "task": {"type": "reward-modeling", "name": "Reward modeling"},
                        "dataset": {
                            "type": "embrm-generated",
                            "name": f"held-out prompts ({held_out['held_out_prompts']})",
                        },
                        "metrics": [
                            {"type": k, "value": round(float(default[k]), 6), "name": k}
                            for k in ("pairwise_accuracy", "per_prompt_spearman", "mse")
                            if default[k] is not None
                        ],
                    }
                ],
            }
        ],
    }
    hub = base_model(config["embedder"]["name"])
    if hub:
        meta["base_model"] = hub
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n"


def model_card(
    config: dict, validation: dict, distillation: dict, plot: str, held_out: dict
) -> str:
    """The card: metadata, data, settings, step 8's table, the heads on held-out prompts."""
    emb = config["embedder"]
    settings = {"distillation": distillation["hyperparameters"], "ensemble": config["ensemble"]}
    shape = f"{held_out['held_out_prompts']} held-out prompts x {held_out['responses_per_prompt']}"
    return (
        front_matter(config, held_out)
        + f"""# Embedding-based reward model ({config["task"]}, {config["objective"]})

Built by embrm {config["embrm_version"]}: an ensemble of {config["ensemble"]["members"]}
MLPs trained on simulated preferences over embeddings (the teacher), calibrated onto the
golden reward model's scale by isotonic regression, and distilled into one MLP (the
student). Default head: `{config["default_head"]}`.

## Data

{config["data"]}

The embedder is `{emb["name"]}` ({emb["pooling"]} pooling over the last hidden layer,
max {emb["max_length"]} tokens, L2-normalised: {emb["normalize"]}, stored as
{emb["dtype"]}); a text is `{emb["text_format"]}`.

## Settings

```json
{json.dumps(settings, indent=2)}
```

## Validation (step 8, {validation["held_out_prompts"]} held-out prompts)

{validation_table(validation)}

![calibration plot]({plot})

## The served heads ({shape} responses)

Each isotonic map is a staircase: responses whose scores fall in one flat step get one
reward, so a GRPO group can have zero reward spread. Its `_strict` twin keeps the map's
values at the centre of each step, interpolates between them and is computed in
float32, so distinct responses never tie. Measured with this bundle's heads on the
stored embeddings (`heads_held_out.json`); MSE is the calibration error:

{heads_table(held_out)}

## Intended use and limits

- Scores are on the golden reward model's scale (the `*_isotonic` and
  `*_isotonic_strict` heads and the student); `teacher` is the ensemble's raw
  Bradley-Terry scale.
- Valid only for texts embedded by the embedder above with these exact settings: a
  different embedder, pooling or text format gives meaningless numbers.
- It imitates one golden reward model on one prompt distribution; outside that
  distribution, and under optimisation pressure (PPO/GRPO), it can be exploited. Use
  the conservative reward (ensemble mean - lambda * std) and watch the golden RM.

## Use

```python
from embrm import RewardModel

rm = RewardModel.from_pretrained("reward_model")
rm.score(["\\n\\nHuman: Hi\\n\\nAssistant:"], [" Hello! How can I help?"])
```
"""
    )
