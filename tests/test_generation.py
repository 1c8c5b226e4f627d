"""Steps 1-4 on locally built tiny models: pooling, scoring, truncation, prompts, SFT."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from embrm.errors import InputError
from embrm.generation import golden, prompts, sampling, sft
from embrm.generation.embeddings import embed_texts, load_embedder
from embrm.generation.tiny_models import build

ROOT = Path(__file__).resolve().parents[1]
HH_TEST = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-base-test.jsonl.gz"
TEXTS = [
    "\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour, water, salt and yeast.",
    "\n\nHuman: Hi\n\nAssistant: Hello!",
    "\n\nHuman: What is a good way to learn chess quickly and well?\n\nAssistant: Play often.",
    "\n\nHuman: Tell me a joke.\n\nAssistant: Why did the chicken cross the road?",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    build(d / "policy", d / "golden", vocab_size=600, n_layer=2, n_embd=64, seed=0)
    return d


def _embed(tok, model, texts, batch_size, pooling="last"):
    cfg = {"pooling": pooling, "normalize": False, "batch_size": batch_size, "max_length": 128}
    out = np.zeros((len(texts), model.config.hidden_size), np.float32)
    embed_texts(tok, model, texts, cfg, out)
    return out


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_batched_pooling_equals_one_text_at_a_time(tiny, pooling):
    tok, model = load_embedder(str(tiny / "policy"), trust_remote_code=False)
    batched = _embed(tok, model, TEXTS, batch_size=4, pooling=pooling)
    single = _embed(tok, model, TEXTS, batch_size=1, pooling=pooling)
    assert np.allclose(batched, single, atol=1e-5)
    if pooling == "last":  # reference: the last real token of an unpadded forward pass
        for text, vec in zip(TEXTS, batched):
            ids = tok(text, return_tensors="pt")
            with torch.no_grad():
                ref = model(**ids).last_hidden_state[0, -1].numpy()
            assert np.allclose(vec, ref, atol=1e-5)


def test_golden_scores_do_not_depend_on_batch_or_padding(tiny):
    tok, model = golden.load_reward_model(str(tiny / "golden"), trust_remote_code=False)
    assert tok.pad_token_id != tok.eos_token_id
    alone = np.array([golden.score_texts(tok, model, [t], 1, 128)[0] for t in TEXTS])
    together = golden.score_texts(tok, model, TEXTS, 4, 128)
    shuffled = golden.score_texts(tok, model, TEXTS[::-1] + [TEXTS[0] * 3], 2, 128)
    assert np.allclose(alone, together, atol=1e-5)
    assert np.allclose(alone[::-1], shuffled[:4], atol=1e-5)
    assert np.std(alone) > 0


def test_response_is_cut_at_the_next_human_turn():
    assert golden.cut_response(" Sure.\n\nHuman: and more?\n\nAssistant: x") == " Sure."
    assert golden.cut_response(" No follow-up.") == " No follow-up."
    texts, k = golden.texts_of([{"prompt": "P:", "responses": [" a\n\nHuman: b", " c"]}])
    assert texts == ["P: a", "P: c"] and k == 2


def test_vllm_backend_without_vllm_is_a_clear_error(tmp_path):
    with pytest.raises(ImportError):
        import vllm  # noqa: F401
    (tmp_path / "p.jsonl").write_text('{"id": "0", "prompt": "\\n\\nHuman: hi\\n\\nAssistant:"}\n')
    with pytest.raises(InputError, match=r"backend=vllm but vllm is not installed.*gpu"):
        sampling.sample_shard(
            tmp_path / "p.jsonl",
            tmp_path / "o.jsonl",
            shard=0,
            shards=1,
            k=2,
            backend="vllm",
            merged_dir="",
            base_dir="",
            adapter_dir=None,
            cfg={"temperature": 1.0, "top_p": 0.9, "max_new_tokens": 4},
            seed=0,
        )
    assert not (tmp_path / "o.jsonl").exists()


def test_prompt_extraction_from_hh_and_conversation_records(caplog):
    records = [
        {"chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d"},
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
            ]
        },
        {"id": "broken", "chosen": "\n\nHuman: no reply here"},
        {"chosen": "\n\nHuman: x\n\nAssistant: y"},
    ]
    with caplog.at_level(logging.WARNING):
        out = prompts.build_prompts(records, max_prompts=None)
    assert out[0]["prompt"] == "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:"
    assert out[0]["completion"] == " d"
    assert out[1]["prompt"] == "\n\nHuman: hi\n\nAssistant:" and out[1]["completion"] == " hello"
    assert len(out) == 3
    assert "1 records have no" in caplog.text and "broken" in caplog.text


def test_real_hh_rlhf_split_loads_through_datasets(tmp_path):
    assert HH_TEST.is_file(), f"test data missing: {HH_TEST}"
    records = prompts.load_records(str(HH_TEST), "test")
    assert len(records) == 2312 and set(records.column_names) == {"chosen", "rejected"}
    out = prompts.build_prompts(records, max_prompts=50, keep=lambda p: len(p) < 2000)
    assert len(out) == 50
    assert all(p["prompt"].endswith("\n\nAssistant:") for p in out)
    assert all("\n\nAssistant:" not in p["completion"] for p in out)


def test_sft_labels_cover_only_the_completion_and_never_drop_an_example(tiny):
    tok = sft.load_tokenizer(str(tiny / "policy"), False, padding_side="right")
    prompt, completion = "\n\nHuman: " + "very long question " * 60 + "\n\nAssistant:", " Ok."
    ex = sft.encode_example(tok, prompt, completion, max_length=64, min_completion=8)
    assert len(ex["input_ids"]) == 64
    target = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    labelled = [t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != sft.IGNORE]
    assert labelled == target
    assert ex["labels"][: 64 - len(target)] == [sft.IGNORE] * (64 - len(target))


def test_sft_trains_a_lora_adapter_and_a_merged_model(tiny, tmp_path):
    from embrm.jsonio import write_jsonl

    rows = [
        {
            "id": str(i),
            "prompt": t.split("Assistant:")[0] + "Assistant:",
            "completion": t.split("Assistant:")[1],
        }
        for i, t in enumerate(TEXTS * 4)
    ]
    write_jsonl(tmp_path / "p.jsonl", rows)
    cfg = dict(
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        lr=1e-3,
        epochs=1,
        batch_size=4,
        max_length=64,
        min_completion_tokens=4,
        gradient_checkpointing=False,
        deepspeed=None,
    )
    res = sft.train_sft(
        str(tiny / "policy"),
        tmp_path / "p.jsonl",
        tmp_path / "adapter",
        tmp_path / "merged",
        cfg,
        seed=0,
    )
    assert res["examples"] == 16 and np.isfinite(res["train_loss"])
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "merged")


def test_shards_gather_back_in_prompt_order(tmp_path):
    from embrm.jsonio import read_jsonl, write_jsonl

    rows = [{"id": str(i), "prompt": f"p{i}"} for i in range(7)]
    write_jsonl(tmp_path / "p.jsonl", rows)
    shards = []
    for s in range(3):
        part = sampling.shard_rows(rows, s, 3)
        write_jsonl(tmp_path / f"s{s}.jsonl", [{**r, "responses": ["x"]} for r in part])
        shards.append(tmp_path / f"s{s}.jsonl")
    sampling.gather_shards(tmp_path / "p.jsonl", shards, tmp_path / "all.jsonl")
    assert [r["id"] for r in read_jsonl(tmp_path / "all.jsonl")] == [r["id"] for r in rows]
    with pytest.raises(InputError, match="missing from the shards"):
        sampling.gather_shards(tmp_path / "p.jsonl", shards[:2], tmp_path / "x.jsonl")


def test_sft_is_reproducible_across_processes(tiny, tmp_path):
    """Same seed, same adapter: the LoRA init must not depend on the process's RNG state."""
    import subprocess
    import sys

    from embrm.jsonio import write_jsonl

    rows = [
        {"id": str(i), "prompt": "\n\nHuman: hi\n\nAssistant:", "completion": " hello"}
        for i in range(4)
    ]
    write_jsonl(tmp_path / "p.jsonl", rows)
    cfg = dict(
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        lr=1e-3,
        epochs=1,
        batch_size=2,
        max_length=32,
        min_completion_tokens=4,
        gradient_checkpointing=False,
        deepspeed=None,
    )
    code = (
        "import sys, torch; from embrm.generation.sft import train_sft; "
        "torch.manual_seed(int(sys.argv[2])); "  # a different RNG state in each process
        f"train_sft({str(tiny / 'policy')!r}, {str(tmp_path / 'p.jsonl')!r}, "
        "sys.argv[1] + '/a', sys.argv[1] + '/m', " + repr(cfg) + ", seed=0)"
    )
    for run, state in (("one", "1"), ("two", "2")):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / run), state], check=True)
    a = (tmp_path / "one/a/adapter_model.safetensors").read_bytes()
    assert a == (tmp_path / "two/a/adapter_model.safetensors").read_bytes()
