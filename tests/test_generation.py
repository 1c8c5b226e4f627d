"""Steps 1-4 on locally built tiny models: pooling, scoring, truncation, prompts, SFT."""

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from embrm.data import prompts, texts
from embrm.data.texts import plain_text
from embrm.generation import golden, sampling, sft
from embrm.generation.embeddings import embed_texts, load_embedder
from embrm.generation.encode import truncating
from embrm.generation.models import resolve
from embrm.generation.tiny_models import build
from embrm.io.errors import InputError

from conftest import SMALL_SFT

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local

ROOT = Path(__file__).resolve().parents[1]
HH_TEST = (
    ROOT / "tests" / "data" / "hh-rlhf-harmless-base-test.jsonl.gz"
)  # MIT, see hh-rlhf-LICENSE
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
    cfg = {
        "pooling": pooling,
        "normalize": False,
        "batch_size": batch_size,
        "max_length": 128,
        "truncation": "keep_response",
    }
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


def test_scoring_loads_gelu_new_as_the_fused_kernel_with_the_same_outputs(tiny):
    """GPT-2's Python-composed tanh GELU is loaded as transformers' one-kernel GELU; the
    states match the model as saved (loaded plainly) to float rounding."""
    from transformers import AutoModel, AutoModelForSequenceClassification
    from transformers.activations import GELUTanh, NewGELUActivation

    for path, auto_class, load in [
        (tiny / "policy", AutoModel, load_embedder),
        (tiny / "golden", AutoModelForSequenceClassification, golden.load_reward_model),
    ]:
        assert json.loads((path / "config.json").read_text())["activation_function"] == "gelu_new"
        tok, model = load(str(path), trust_remote_code=False)
        acts = [m for m in model.modules() if isinstance(m, (GELUTanh, NewGELUActivation))]
        assert acts and all(isinstance(m, GELUTanh) for m in acts)
        plain = auto_class.from_pretrained(path).eval()
        plain.resize_token_embeddings(len(tok))
        assert any(isinstance(m, NewGELUActivation) for m in plain.modules())
        enc = tok(TEXTS, padding=True, return_tensors="pt")
        with torch.no_grad():
            out, ref = model(**enc), plain(**enc)
        key = "last_hidden_state" if auto_class is AutoModel else "logits"
        assert torch.allclose(out[key], ref[key], atol=1e-5)


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
    assert texts.cut_response(" Sure.\n\nHuman: and more?\n\nAssistant: x") == " Sure."
    assert texts.cut_response(" No follow-up.") == " No follow-up."
    texts_, k = texts.texts_of([{"prompt": "P:", "responses": [" a\n\nHuman: b", " c"]}])
    assert list(texts_) == ["P: a", "P: c"] and k == 2


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
            gpu_memory_utilization=0.9,
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
    assert len(records) == 2312 and set(records[0]) == {"chosen", "rejected"}
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


def _sft_rows(path):
    from embrm.io.jsonio import write_jsonl

    rows = [
        {
            "id": str(i),
            "prompt": t.split("Assistant:")[0] + "Assistant:",
            "completion": t.split("Assistant:")[1],
        }
        for i, t in enumerate(TEXTS * 4)
    ]
    write_jsonl(path, rows)
    return path


def _adapter_tensors(folder):
    from safetensors.numpy import load_file

    return load_file(str(Path(folder) / "adapter_model.safetensors"))


def test_sft_trains_a_lora_adapter_and_a_merged_model(tiny, tmp_path):
    _sft_rows(tmp_path / "p.jsonl")
    cfg = SMALL_SFT
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
    assert not (tmp_path / "adapter" / "training_args.bin").exists()  # no pickles shipped
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    def policy():
        return AutoModelForCausalLM.from_pretrained(tiny / "policy")

    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        base = policy()(ids).logits
        with_adapter = PeftModel.from_pretrained(policy(), tmp_path / "adapter")(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")(ids).logits
    assert torch.allclose(merged, with_adapter, atol=1e-5)
    assert not torch.allclose(merged, base, atol=1e-4)  # training moved the weights


def test_shards_gather_back_in_prompt_order(tmp_path):
    from embrm.io.jsonio import read_jsonl, write_jsonl

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

    from embrm.io.jsonio import write_jsonl

    rows = [
        {"id": str(i), "prompt": "\n\nHuman: hi\n\nAssistant:", "completion": " hello"}
        for i in range(4)
    ]
    write_jsonl(tmp_path / "p.jsonl", rows)
    cfg = {**SMALL_SFT, "batch_size": 2, "max_length": 32}
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


def test_sft_gradient_checkpointing_trains_the_same_adapter(tiny, tmp_path):
    rows = _sft_rows(tmp_path / "p.jsonl")
    for gc in (False, True):
        cfg = {**SMALL_SFT, "gradient_checkpointing": gc}
        sft.train_sft(
            str(tiny / "policy"), rows, tmp_path / f"a{gc}", tmp_path / f"m{gc}", cfg, seed=0
        )
    plain, checkpointed = (
        _adapter_tensors(tmp_path / "aFalse"),
        _adapter_tensors(tmp_path / "aTrue"),
    )
    assert plain.keys() == checkpointed.keys()
    assert any(np.abs(v).max() > 0 for k, v in plain.items() if "lora_B" in k)  # B starts at 0
    for key in plain:
        assert np.allclose(plain[key], checkpointed[key], atol=1e-6), key


def test_multi_gpu_launch_runs_the_same_training_under_torchrun(tiny, tmp_path):
    """The path a job with several GPUs takes (torchrun, one process per GPU), run with
    one CPU process: same adapter bytes as the in-process run."""
    assert sft.launch_command(4, "job.json")[2:5] == [
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=4",
    ]
    rows = _sft_rows(tmp_path / "p.jsonl")

    def job(name):
        return dict(
            base_model=str(tiny / "policy"),
            examples_file=str(rows),
            out_adapter=str(tmp_path / name / "adapter"),
            cfg=SMALL_SFT,
            seed=0,
            trust_remote_code=False,
        )

    stats = sft.launch(job("dist"), 1)
    local = sft.fit_adapter(**job("local"))
    assert stats == local
    a = (tmp_path / "dist/adapter/adapter_model.safetensors").read_bytes()
    assert a == (tmp_path / "local/adapter/adapter_model.safetensors").read_bytes()


@pytest.mark.gpu
def test_deepspeed_zero3_trains_the_same_adapter(tiny, tmp_path):
    """ZeRO-3 (+ gradient checkpointing) under torchrun; needs the GPU stack (envs/gpu.yaml)."""
    rows = _sft_rows(tmp_path / "p.jsonl")
    ds = str(ROOT / "config" / "deepspeed_zero3.json")
    for name, extra in (
        ("plain", {}),
        ("zero3", {"deepspeed": ds, "gradient_checkpointing": True}),
    ):
        cfg = {**SMALL_SFT, **extra}
        sft.train_sft(
            str(tiny / "policy"), rows, tmp_path / name / "a", tmp_path / name / "m", cfg, seed=0
        )
    plain, zero3 = _adapter_tensors(tmp_path / "plain/a"), _adapter_tensors(tmp_path / "zero3/a")
    for key in plain:
        assert np.allclose(plain[key], zero3[key], atol=1e-5), key


def test_sft_rejects_a_missing_deepspeed_config_before_training(tiny, tmp_path):
    rows = _sft_rows(tmp_path / "p.jsonl")
    cfg = {**SMALL_SFT, "deepspeed": str(tmp_path / "missing.json")}
    with pytest.raises(InputError, match="generation.sft.deepspeed"):
        sft.train_sft(str(tiny / "policy"), rows, tmp_path / "a", tmp_path / "m", cfg, seed=0)
    assert not (tmp_path / "trainer").exists()


def test_sft_keeps_the_tokenizers_bos_first_when_trimming_the_prompt():
    """Llama/Gemma tokenisers put BOS before every prompt at sampling time; the trimmed
    training prompt must start with it too."""
    from tokenizers import processors

    from embrm.generation.tiny_models import train_tokenizer

    tok = train_tokenizer([t * 5 for t in TEXTS], vocab_size=300)
    bos = tok.bos_token_id
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{tok.bos_token} $A", special_tokens=[(tok.bos_token, bos)]
    )
    assert sft.special_prefix(tok) == [bos]
    long_prompt = "\n\nHuman: " + "why is the sky blue " * 40 + "\n\nAssistant:"
    ex = sft.encode_example(tok, long_prompt, " Light scatters.", max_length=48, min_completion=8)
    assert len(ex["input_ids"]) == 48 and ex["input_ids"][0] == bos
    assert ex["input_ids"][1] != bos and ex["labels"][0] == sft.IGNORE


@pytest.fixture(scope="module")
def eos_padded(tiny, tmp_path_factory):
    """The tiny policy with a tokenizer that pads with EOS (like GPT-2 or Llama-3 setups)."""
    from transformers import AutoTokenizer

    d = tmp_path_factory.mktemp("eos_pad")
    shutil.copytree(tiny / "policy", d, dirs_exist_ok=True)
    tok = AutoTokenizer.from_pretrained(d)
    tok.pad_token = tok.eos_token
    tok.save_pretrained(d)
    return d


def test_pad_token_handling_without_a_distinct_pad(eos_padded):
    """Training/sampling pad with EOS and keep the model's vocabulary (the LoRA adapter
    must fit the base model in vLLM); scoring adds a pad distinct from EOS."""
    from transformers import AutoConfig, AutoModel

    from embrm.generation.models import load_for_scoring

    vocab = AutoConfig.from_pretrained(eos_padded).vocab_size
    tok = sft.load_tokenizer(str(eos_padded), False, "left")
    assert tok.pad_token_id == tok.eos_token_id and len(tok) == vocab
    tok, model = load_for_scoring(AutoModel, str(eos_padded), False)
    assert tok.pad_token_id != tok.eos_token_id
    assert model.get_input_embeddings().num_embeddings >= len(tok)


@pytest.mark.parametrize("which", ["tiny", "eos_padded"])
def test_hf_sampler_returns_k_responses_per_prompt_in_order(which, request, tiny):
    folder = tiny / "policy" if which == "tiny" else request.getfixturevalue("eos_padded")
    prompts_ = [p.split("Assistant:")[0] + "Assistant:" for p in TEXTS[:3]]
    cfg = {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 6, "batch_size": 2}
    out = sampling.sample_hf(str(folder), prompts_, 4, cfg, seed=0, trust_remote_code=False)
    assert len(out) == 3 and all(len(r) == 4 and all(isinstance(x, str) for x in r) for r in out)
    again = sampling.sample_hf(str(folder), prompts_, 4, cfg, seed=0, trust_remote_code=False)
    assert again == out  # seeded


def test_bad_prompt_records_are_named():
    with pytest.raises(InputError, match="record 1 has none of the fields"):
        prompts.build_prompts(
            [{"chosen": "\n\nHuman: a\n\nAssistant: b"}, {"text": "x"}], max_prompts=None
        )
    twice = [{"id": "a", "chosen": "\n\nHuman: a\n\nAssistant: b"}] * 2
    with pytest.raises(InputError, match="record id a occurs twice"):
        prompts.build_prompts(twice, max_prompts=None)
    with pytest.raises(InputError, match="no usable prompts"):
        prompts.build_prompts([{"chosen": "\n\nHuman: only"}], max_prompts=None)


def test_ragged_samples_are_rejected_naming_the_file_and_prompt():
    rows = [
        {"id": "p0", "prompt": "a", "responses": ["x", "y"]},
        {"id": "p1", "prompt": "b", "responses": ["x"]},
    ]
    with pytest.raises(InputError, match=r"s\.jsonl: prompt p1 has a different number"):
        texts.texts_of(rows, "s.jsonl")


def test_length_sorting_tokenises_in_chunks_without_changing_lengths(tiny):
    from embrm.generation.encode import token_lengths

    tok = sft.load_tokenizer(str(tiny / "policy"), False, "right")
    whole = [len(x) for x in tok(TEXTS * 3, truncation=True, max_length=16)["input_ids"]]
    assert token_lengths(tok, TEXTS * 3, 16, chunk=5).tolist() == whole


@pytest.mark.parametrize("which", ["tiny", "minilm"])
def test_tokenised_once_batches_equal_the_tokenisers_own_padding(which, request, monkeypatch):
    """A server's batch (tokenised once, padded per batch) and a split's (tokenised twice)
    give the same batches, and each equals ``tok(..., padding=True)`` in every field
    (MiniLM's ``token_type_ids`` too), on either padding side."""
    from embrm.generation import encode

    if which == "tiny":
        tok, _ = load_embedder(str(request.getfixturevalue("tiny") / "policy"), False)
    else:
        tok, _ = request.getfixturevalue("minilm")
    texts = [t * (1 + i % 3) for i, t in enumerate(TEXTS * 3)]
    once = list(encode.batches_by_length(tok, texts, 5, 24))
    monkeypatch.setattr(encode, "TOKENISE_CHUNK", 4)
    twice = list(encode.batches_by_length(tok, texts, 5, 24))
    assert len(once) == len(twice) == 3
    for (idx, enc), (idx2, enc2) in zip(once, twice):
        assert idx.tolist() == idx2.tolist()
        assert set(enc.keys()) == set(enc2.keys()) >= {"input_ids", "attention_mask"}
        for key in enc2:
            assert torch.equal(enc[key], enc2[key]), key
    monkeypatch.setattr(tok, "padding_side", "left")
    with encode.truncating(tok, "keep_response"):
        rows = tok(texts, truncation=True, max_length=24)
        ref = tok(texts, truncation=True, max_length=24, padding=True, return_tensors="pt")
    left = encode.padded(tok, dict(rows))
    assert all(torch.equal(left[k], ref[k]) for k in ref)


def test_config_named_files_resolve_against_the_repository(tmp_path, monkeypatch):
    from embrm.generation.models import resolve_file

    ds = json.loads((ROOT / "config" / "deepspeed_zero3.json").read_text())
    assert ds["zero_optimization"]["stage"] == 3
    monkeypatch.chdir(tmp_path)  # a run with --directory elsewhere
    assert resolve_file("config/deepspeed_zero3.json", str(ROOT)) == str(
        ROOT / "config" / "deepspeed_zero3.json"
    )
    (tmp_path / "mine.json").write_text("{}")
    assert resolve_file("mine.json", str(ROOT)) == "mine.json"
    assert resolve_file(None, str(ROOT)) is None


@pytest.fixture(scope="module")
def minilm():
    return load_embedder(resolve("minilm", "embedder"), trust_remote_code=False)


def _minilm_embed(minilm, texts, truncation, max_length=64):
    tok, model = minilm
    cfg = {
        "pooling": "mean",
        "normalize": True,
        "batch_size": 4,
        "max_length": max_length,
        "truncation": truncation,
    }
    out = np.zeros((len(texts), model.config.hidden_size), np.float32)
    embed_texts(tok, model, texts, cfg, out)
    return out


def test_a_prompt_longer_than_max_length_keeps_the_responses_apart(minilm):
    """keep_response trims the prompt from the left: two answers to a long prompt embed
    differently, and [CLS]/[SEP] still frame the text; right truncation loses both
    answers and makes the two texts one embedding."""
    tok, _ = minilm
    prompt = "\n\nHuman: " + "tell me about the weather in the mountains " * 30 + "\n\nAssistant:"
    chosen = " I cannot help with hurting anyone."
    rejected = " Sure, here is how to build it step by step."
    texts = [plain_text(prompt, chosen), plain_text(prompt, rejected)]
    assert len(tok(prompt)["input_ids"]) > 64
    kept = _minilm_embed(minilm, texts, "keep_response")
    assert np.abs(kept[0] - kept[1]).max() > 1e-2
    cut = _minilm_embed(minilm, texts, "right")
    np.testing.assert_allclose(cut[0], cut[1], atol=1e-6)
    with truncating(tok, "keep_response"):
        ids = tok(texts[0], truncation=True, max_length=64)["input_ids"]
    assert len(ids) == 64 and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.decode(ids[-9:-1]).strip().endswith("hurting anyone.")
    assert tok.truncation_side == "right"  # restored after the call


def test_a_response_longer_than_max_length_keeps_its_end(minilm):
    """A response that alone exceeds max_length keeps its last tokens: texts that differ
    only at the end still differ, and one short text is embedded untouched."""
    tok, _ = minilm
    long = " word" * 200
    texts = [plain_text("\n\nHuman: hi\n\nAssistant:", long + " yes"), "short text"]
    with truncating(tok, "keep_response"):
        ids = tok(texts[0], truncation=True, max_length=32)["input_ids"]
    assert tok.decode(ids[1:-1]).split()[-1] == "yes"
    both = _minilm_embed(minilm, texts, "keep_response", max_length=32)
    alone = _minilm_embed(minilm, texts[1:], "right", max_length=32)
    np.testing.assert_allclose(both[1], alone[0], atol=1e-6)


def test_an_unknown_truncation_is_named():
    with pytest.raises(InputError, match="truncation must be one of"):
        with truncating(object(), "middle"):
            pass
