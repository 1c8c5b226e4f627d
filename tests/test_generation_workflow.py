"""Steps 1-4 through the real `snakemake`: tiny local models, canonical arrays row-aligned."""

import json

import numpy as np
import pytest

from embrm.data import texts
from embrm.generation import golden
from embrm.generation.embeddings import embed_texts, load_embedder

from conftest import GEN_ARRAYS as ARRAYS
from conftest import GEN_DATA as DATA
from conftest import GEN_EMB as EMB
from conftest import planned_jobs, run_snakemake


def _rows(path):
    return [json.loads(line) for line in path.open()]


@pytest.mark.workflow
def test_steps_1_to_4_write_row_aligned_canonical_arrays(generated):
    tmp_path, cfg, output = generated
    jobs = planned_jobs(output)
    assert jobs["sample_shard"] == 2 * 2 and jobs["sft"] == 1 and jobs["build_tiny_models"] == 1
    assert jobs["annotate_shard"] == 2 * 2 and jobs["embed_shard"] == 2 * 2
    gen = cfg["generation"]
    data, emb_dir = tmp_path / DATA, tmp_path / EMB
    tok_g, rm = golden.load_reward_model(str(tmp_path / "results/models/tiny/golden_rm"), False)
    tok_e, embedder = load_embedder(str(tmp_path / "results/models/tiny/policy"), False)
    for split, n in (("train", 24), ("test", 15)):
        k = gen["sampling"][f"k_{split}"]
        prompts = _rows(tmp_path / f"results/generate/tiny/prompts/{split}.jsonl")
        samples = _rows(data / f"{split}_samples.jsonl")
        assert [p["id"] for p in prompts] == [s["id"] for s in samples]  # shards gathered in order
        assert [p["prompt"] for p in prompts] == [s["prompt"] for s in samples]
        assert len(samples) == n and all(len(s["responses"]) == k for s in samples)
        rewards = np.load(data / f"{split}_rewards.npy")
        emb = np.load(emb_dir / f"{split}_embeddings.npy", mmap_mode="r")
        assert rewards.shape == (n, k) and rewards.dtype == np.float32
        assert emb.shape == (n, k, gen["tiny"]["n_embd"]) and emb.dtype == np.float16
        assert np.isfinite(rewards).all() and np.isfinite(emb).all()
        # row (i, j) of both arrays is response j of prompt i, scored/embedded on its own:
        # the RM reads the raw text with the response stripped, the embedder as written
        for i, j in ((0, 0), (n - 1, k - 1), (n // 2, 1)):
            prompt, response = samples[i]["prompt"], samples[i]["responses"][j]
            scored = texts.raw_text(prompt, response)
            alone = golden.score_texts(tok_g, rm, [scored], 1, gen["golden"]["max_length"])[0]
            assert abs(alone - rewards[i, j]) < 1e-4
            one = np.zeros((1, emb.shape[2]), np.float32)
            text = texts.plain_text(prompt, response)
            embed_texts(tok_e, embedder, [text], {**gen["embedding"], "batch_size": 1}, one)
            assert np.allclose(one[0], emb[i, j].astype(np.float32), atol=2e-2, rtol=1e-2)
    logs = tmp_path / "results/logs/generate/tiny"
    for log in (
        "sft",
        "annotate_golden_train",
        "annotate_shard/train.shard1",
        "tiny_last/embed_shard/test.shard0",
        "tiny_last/embed_responses_test",
        "prepare_prompts_train",
    ):
        assert (logs / f"{log}.log").stat().st_size > 0
    again = run_snakemake(tmp_path, cfg, "-n", *ARRAYS)
    assert "Nothing to be done" in again.stdout + again.stderr
