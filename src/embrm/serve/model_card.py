"""The bundle's README.md: what the reward model was trained on, how well it did, where
it may be used."""

from __future__ import annotations

import json

METRICS = ("global_spearman", "per_prompt_spearman", "pairwise_accuracy", "mse")


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


def model_card(config: dict, validation: dict, distillation: dict, plot: str) -> str:
    emb = config["embedder"]
    settings = {"distillation": distillation["hyperparameters"], "ensemble": config["ensemble"]}
    return f"""# Embedding-based reward model ({config["task"]}, {config["objective"]})

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

## Intended use and limits

- Scores are on the golden reward model's scale (the `*_isotonic` heads and the
  student); `teacher` is the ensemble's raw Bradley-Terry scale.
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
