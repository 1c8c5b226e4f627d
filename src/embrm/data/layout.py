"""Where each experiment's canonical arrays live, and which settings build a data folder.

Data folders are named after what distinguishes them, so study points that change only
step 5-8 knobs share one folder, and points that change the data side get their own:

- generated: ``results/data/generate/<policy>/{split}_rewards.npy`` and
  ``results/data/generate/<policy>/<embedder>_<pooling>/{split}_embeddings.npy``
  (samples and rewards depend on the policy only; embeddings also on the embedder);
- imported: ``results/data/import/<dataset>_<gen_model>_<embed_model>_<reward_model>/``;
- synthetic: ``results/data/synthetic/``;
- human preference pairs: ``results/data/pairs/<name>/{split}_{pairs.jsonl,preferences.npy}``
  and ``results/data/pairs/<name>/<embedder>_<pooling>/{split}_embeddings.npy``
  (``(N, 2, D)``; see :mod:`embrm.data.preferences`);
- rated responses: ``results/data/ratings/<name>/{split}_{ratings.jsonl,attributes.npy}``
  and ``results/data/ratings/<name>/<embedder>_<pooling>/{split}_embeddings.npy``
  (``(R, 2, D)``: the prompt alone, then prompt + response; see
  :mod:`embrm.data.ratings`).
- standard benchmarks (``evaluation.benchmarks``, test only):
  ``results/data/benchmark_sets/<name>/test_pairs.jsonl`` and
  ``results/data/benchmark_sets/<name>/<embedder>_<pooling>/test_embeddings.npy``
  (see :mod:`embrm.evaluate.benchmarks.steps`).

A folder name maps back to the settings that build it through :class:`DataVariants`,
which the generation and import rules read their parameters from.
"""

from __future__ import annotations

import re

from embrm.io.errors import InputError
from embrm.paths import RESULTS

DATA = f"{RESULTS}/data"
# the data folder of each source; `{tag}`, `{policy}` are folder names (see below)
FOLDERS = {
    "synthetic": f"{DATA}/synthetic",
    "import": f"{DATA}/import/{{tag}}",
    "generate": f"{DATA}/generate/{{policy}}",
    "pairs": f"{DATA}/pairs/{{dataset}}",
    "ratings": f"{DATA}/ratings/{{dataset}}",
    "benchmarks": f"{DATA}/benchmark_sets/{{benchmark}}",
}
# the array that labels the train split for step 5: golden rewards (N, K) from which the
# simulated annotator draws pairs, or the human preferences (N, 2) of pair data
LABELS = {
    "synthetic": "rewards",
    "import": "rewards",
    "generate": "rewards",
    "pairs": "preferences",
}
EXTENSIONS = {"samples": "jsonl", "pairs": "jsonl", "ratings": "jsonl", "report": "json"}
# what rated responses have, and the steps that run on them
RATING_KINDS = ("ratings", "attributes", "embeddings")
RATINGS_RUN = (
    "data.source: ratings runs prepare_ratings, embed_ratings, fit_multi_objective, "
    "evaluate_multi_objective and multi_objective_model (target `all`, see "
    "docs/multi_objective.md)"
)
UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def model_tag(name: str) -> str:
    """A folder name for a model: ``google/gemma-2b`` -> ``google--gemma-2b``."""
    return UNSAFE.sub("_", name.strip("/").replace("/", "--"))


def policy_tag(config: dict) -> str:
    return model_tag(config["generation"]["policy"])


def embedder_tag(config: dict) -> str:
    emb = config["generation"]["embedding"]
    return f"{model_tag(emb['model'])}_{emb['pooling']}"


def import_tag(config: dict) -> str:
    imp = config["data"]["import"]
    return "_".join(imp[k] for k in ("dataset", "gen_model", "embed_model", "reward_model"))


def file_pattern(source: str, kind: str) -> str:
    """The path pattern of one kind of array (``embeddings``, ``rewards``; ``samples``
    for generated data) with ``{split}`` and the source's folder wildcards; the rules'
    outputs and :func:`data_path` both use it."""
    folder = FOLDERS[source]
    if source in ("generate", "pairs", "ratings", "benchmarks") and kind == "embeddings":
        folder += "/{embedder}"
    return f"{folder}/{{split}}_{kind}.{EXTENSIONS.get(kind, 'npy')}"


def data_path(config: dict, kind: str, split: str) -> str:
    """Canonical array of one split: kind is ``embeddings`` (N, K, D) or ``rewards`` (N, K);
    for pair data ``embeddings`` (N, 2, D), ``preferences`` (N, 2) or ``pairs``; for rated
    responses ``embeddings`` (R, 2, D), ``attributes`` (R, J) or ``ratings``."""
    source = config["data"]["source"]
    if source == "ratings" and kind not in RATING_KINDS:
        raise InputError(
            f"rated responses (data.source: ratings) have no {kind}: steps 5-8 (the ORM "
            f"ensemble, its evaluation, calibration, its bundle), studies and active "
            f"learning need pairs or golden rewards. {RATINGS_RUN}"
        )
    if source == "pairs" and kind == "rewards":
        raise InputError(
            "pair data (data.source: pairs) have human labels, not golden rewards: steps "
            "7-8, best-of-N and the report figures need rewards and are not run for them"
        )
    if source == "import":
        tags = {"tag": import_tag(config)}
    elif source == "generate":
        tags = {"policy": policy_tag(config), "embedder": embedder_tag(config)}
    elif source in ("pairs", "ratings"):
        tags = {"dataset": config["data"][source]["name"], "embedder": embedder_tag(config)}
    else:
        tags = {}
    return file_pattern(source, kind).format(split=split, **tags)


def benchmark_path(config: dict, name: str, kind: str) -> str:
    """A benchmark's packed rows (``kind`` pairs) or their embeddings ``(rows, 2, D)``
    under the experiment's embedder (``kind`` embeddings)."""
    pattern = file_pattern("benchmarks", kind)
    return pattern.format(split="test", benchmark=name, embedder=embedder_tag(config))


class DataVariants:
    """The data-side settings of every experiment (the main run and each study point),
    indexed by the folder names they build.

    Generation stages take every setting from the main config except the models a
    folder is named after; a study point's ``seed`` reseeds steps 5-8 only, so seed
    repeats share one generated data set.
    """

    def __init__(self, main: dict, experiments: list[dict]):
        self.main = main
        self.policies: dict[str, str] = {}
        self.embedders: dict[str, dict] = {}
        self.imports: dict[str, dict] = {}
        self.pair_sets: dict[str, dict] = {}
        self.rating_sets: dict[str, dict] = {}
        self.benchmark_sets: dict[str, dict] = {}
        for cfg in [main, *experiments]:
            for name, bench in cfg["evaluation"]["benchmarks"].items():
                key = f"evaluation.benchmarks.{name}"
                self._add(self.benchmark_sets, name, bench, key)
            source = cfg["data"]["source"]
            if source == "generate":
                gen = cfg["generation"]
                self._add(self.policies, policy_tag(cfg), gen["policy"], "generation.policy")
            if source in ("generate", "pairs", "ratings"):
                emb = {k: cfg["generation"]["embedding"][k] for k in ("model", "pooling")}
                self._add(self.embedders, embedder_tag(cfg), emb, "generation.embedding.model")
            ratings = cfg["data"].get("ratings")
            if source == "pairs":
                pairs = cfg["data"]["pairs"]
                if pairs["from_ratings"]:  # the folder depends on the ratings it derives from
                    pairs = {**pairs, "ratings": ratings}
                    self._add_ratings(ratings)
                self._add(self.pair_sets, pairs["name"], pairs, "data.pairs.name")
            elif source == "ratings":
                self._add_ratings(ratings)
            elif source == "import":
                self._add(self.imports, import_tag(cfg), cfg["data"]["import"], "data.import")

    @staticmethod
    def _add(index: dict, tag: str, value, key: str) -> None:
        if index.setdefault(tag, value) != value:
            raise InputError(
                f"config key {key}: {index[tag]!r} and {value!r} would share the data "
                f"folder {tag!r}; rename one of them"
            )

    def _add_ratings(self, ratings: dict) -> None:
        """A ratings folder holds the rated responses, whatever pairs are made of them
        later: points that differ only in ``pair_recipe`` share it."""
        prepared = {k: v for k, v in ratings.items() if k != "pair_recipe"}
        self._add(self.rating_sets, ratings["name"], prepared, "data.ratings.name")

    @staticmethod
    def _lookup(index: dict, tag: str, what: str):
        if tag not in index:
            raise InputError(f"no configured experiment uses the {what} folder {tag!r}")
        return index[tag]

    def policy(self, tag: str) -> str:
        """The policy model name behind a ``results/data/generate/<policy>`` folder."""
        return self._lookup(self.policies, tag, "policy")

    def embedding(self, tag: str) -> dict:
        """The main config's embedding settings with this folder's model and pooling."""
        return {
            **self.main["generation"]["embedding"],
            **self._lookup(self.embedders, tag, "embedder"),
        }

    def pairs(self, name: str) -> dict:
        """The ``data.pairs`` section behind a ``results/data/pairs/<name>`` folder (with
        ``from_ratings``, the ``data.ratings`` section it derives from under ``ratings``)."""
        return self._lookup(self.pair_sets, name, "pairs")

    def ratings(self, name: str) -> dict:
        """The ``data.ratings`` section behind a ``results/data/ratings/<name>`` folder,
        less ``pair_recipe`` (the steps that make pairs read it from their own config)."""
        return self._lookup(self.rating_sets, name, "ratings")

    def benchmark(self, name: str) -> dict:
        """The ``evaluation.benchmarks`` entry behind a ``benchmark_sets/<name>`` folder."""
        return self._lookup(self.benchmark_sets, name, "benchmark")

    def release(self, tag: str) -> dict:
        """The ``data.import`` section behind a ``results/data/import/<tag>`` folder."""
        return self._lookup(self.imports, tag, "import")
