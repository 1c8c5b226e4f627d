"""What the served reward model reads, without a bundle: chat templates of real models
rendered by a real tokenizer and read back as the training dialogue, bad texts named,
the strict isotonic map, and the dynamic batcher's isolation and backpressure."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from embrm.calibrate.map_json import apply_strict, strict_breakpoints
from embrm.data.builtin_prompts import dialogues
from embrm.data.prompts import dialogue_messages
from embrm.generation.tiny_models import builtin_tokenizer
from embrm.serve.batching import MIN_PART, DynamicBatcher, QueueFull
from embrm.serve.chat import BUILT_IN, template_format
from embrm.serve.texts import BadText, TextReader, check_texts

from chat_templates import TEMPLATES, openrlhf_query, templated_tokenizer

MULTI_TURN = "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: How do I bake bread?\n\nAssistant:"  # noqa: E501


def examples():
    """HH (prompt, response) pairs: the built-in dialogues and a multi-turn one."""
    rows = [(d["prompt"], " " + d["completion"].strip()) for d in dialogues()[:6]]
    return [*rows, (MULTI_TURN, " Mix flour, water and yeast.")]


@pytest.fixture(scope="module", params=list(TEMPLATES))
def template(request):
    return request.param, templated_tokenizer(request.param)


def reader_for(name, tok) -> TextReader:
    """Built-in formats, plus the tokenizer's own one for a template none knows."""
    own = template_format(tok)
    return TextReader((own, *BUILT_IN) if name == "zephyr" else BUILT_IN)


def test_chat_template_queries_read_as_the_training_dialogue(template):
    name, tok = template
    reader = reader_for(name, tok)
    eos = TEMPLATES[name][2]
    for prompt, response in examples():
        query, chat_prompt = openrlhf_query(tok, prompt, response.strip(), eos)
        assert query != prompt + response
        want = prompt + response
        assert reader.pair(chat_prompt, query[len(chat_prompt) :])[0] == want
        text, fmt = reader.pair(None, query)  # no prompt given: the last turn is the answer
        assert text == want and fmt == ("template" if name == "zephyr" else name)
        # OpenRLHF's request: split at the prompt, or not when the prompt does not match
        texts, names, split = reader.queries([query, query], [chat_prompt, "other"])
        assert texts == [want, want] and split == [1.0, 0.0] and None not in names


def test_a_response_that_runs_past_its_turn_is_cut(template):
    name, tok = template
    eos = TEMPLATES[name][2]
    prompt, response = examples()[0]
    _, chat_prompt = openrlhf_query(tok, prompt, response, eos)
    more = tok.apply_chat_template(
        [{"role": "user", "content": "And then?"}], tokenize=False, add_generation_prompt=True
    )
    tail = response.strip() + eos + more.removeprefix(tok.bos_token or "") + "Bake it."
    assert reader_for(name, tok).pair(chat_prompt, tail)[0] == prompt + response


def test_the_probe_reads_real_templates_as_the_built_in_formats():
    for fmt in BUILT_IN:
        found = template_format(templated_tokenizer(fmt.name))
        assert found is not None
        assert found.headers["user"] == fmt.headers["user"]
        assert found.headers["assistant"] == fmt.headers["assistant"]
        assert found.ends[0] == fmt.ends[0]
    zephyr = template_format(templated_tokenizer("zephyr"))
    assert zephyr.headers == {"user": "<|user|>\n", "assistant": "<|assistant|>\n"}
    assert template_format(builtin_tokenizer(300)) is None  # no template: no format


def test_hh_text_is_kept_and_unknown_text_is_scored_as_given():
    reader = TextReader()
    prompt, response = examples()[-1]
    assert reader.pair(prompt, response + "<|endoftext|>") == (prompt + response, "hh")
    assert reader.pair(prompt, response + "\n\nHuman: more") == (prompt + response, "hh")
    assert reader.pair(None, "Tell me a joke. Why did the chicken") == (
        "Tell me a joke. Why did the chicken",
        None,
    )
    # TRL: conversational examples are the dialogue too
    texts, names = reader.trl(
        [dialogue_messages(prompt)[:-1]], [[{"role": "assistant", "content": response.strip()}]]
    )
    assert texts == [prompt + response] and names == ["messages"]


def test_bad_texts_are_named_by_field_and_index():
    check_texts(["fine", "also fine"], "query")
    with pytest.raises(BadText) as bad:
        check_texts(["fine", "x\ud800y"], "query")
    assert (bad.value.field, bad.value.index) == ("query", 1)
    assert "query[1]: not valid Unicode (surrogates not allowed at character 1)" in str(bad.value)
    with pytest.raises(BadText, match=r"prompts\[0\]: expected a string, got int"):
        check_texts([3], "prompts")


def isotonic_breakpoints(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    iso = IsotonicRegression(out_of_bounds="clip").fit(x, x + rng.normal(scale=1.5, size=n))
    return iso, iso.X_thresholds_, iso.y_thresholds_


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_strict_map_never_ties_and_keeps_each_steps_value_at_its_centre(seed):
    iso, xs, ys = isotonic_breakpoints(seed)
    knots = strict_breakpoints(xs, ys)
    s = np.sort(np.random.default_rng(seed + 10).normal(scale=2, size=5000))
    strict = apply_strict(knots, s)
    assert np.all(np.diff(strict) > 0)  # strictly increasing, beyond the fitted range too
    assert len(np.unique(iso.predict(s))) < len(s) / 2  # the staircase ties most scores
    starts = np.flatnonzero(np.r_[True, np.diff(ys) > 0])
    stops = np.r_[starts[1:], len(ys)] - 1
    centres = (xs[starts] + xs[stops]) / 2
    assert np.allclose(apply_strict(knots, centres), ys[starts])
    # close to the map it smooths: never further than one step's rise
    inside = s[(s > xs[0]) & (s < xs[-1])]
    assert np.abs(apply_strict(knots, inside) - iso.predict(inside)).max() <= np.diff(ys).max()


def test_a_constant_map_still_orders_scores():
    knots = strict_breakpoints(np.array([0.0, 1.0]), np.array([0.3, 0.3]))
    out = apply_strict(knots, np.array([-1.0, 0.5, 2.0]))
    assert np.all(np.diff(out) > 0) and out[1] == pytest.approx(0.3)


def score_or_fail(texts):
    """A scorer that refuses the text "bad" (as a tokenizer refuses what it cannot read)."""
    if "bad" in texts:
        raise ValueError("cannot read 'bad'")
    n = np.array([float(len(t)) for t in texts])
    return n, n / 10


def test_a_bad_request_fails_alone_and_others_in_its_batch_get_their_rewards():
    async def main():
        batcher = DynamicBatcher(score_or_fail, max_batch=64, max_wait_s=0.05, max_queue=64)
        worker = asyncio.create_task(batcher.run())
        jobs = [batcher.submit(t) for t in (["a"], ["bb", "ccc"], ["bad"], ["dddd"])]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        worker.cancel()
        batcher.close()
        return results, batcher

    results, batcher = asyncio.run(main())
    assert [r[0].tolist() for r in (results[0], results[1], results[3])] == [[1], [2, 3], [4]]
    assert isinstance(results[2], ValueError) and batcher.failed == 1


def test_a_full_queue_says_when_to_retry_and_abandoned_requests_are_dropped():
    async def main():
        batcher = DynamicBatcher(score_or_fail, max_batch=64, max_wait_s=0, max_queue=2)
        kept = asyncio.ensure_future(batcher.submit(["a"]))
        gone = asyncio.ensure_future(batcher.submit(["bb"]))
        await asyncio.sleep(0)  # both queued, no worker yet
        with pytest.raises(QueueFull) as full:
            await batcher.submit(["ccc"])
        gone.cancel()  # its client disconnected
        worker = asyncio.create_task(batcher.run())
        rewards = (await kept)[0].tolist()
        worker.cancel()
        batcher.close()
        return full.value, rewards, batcher

    full, rewards, batcher = asyncio.run(main())
    assert full.retry_after >= 1 and rewards == [1.0]
    assert batcher.dropped == 1 and batcher.texts_scored == 1


def test_a_large_request_is_scored_in_parts_by_every_worker_and_counts_once_in_the_queue():
    calls: list[int] = []

    def slow_lengths(texts):
        calls.append(len(texts))
        time.sleep(0.05)  # long enough that both workers hold a part at once
        n = np.array([float(len(t)) for t in texts])
        return n, n / 10

    texts = ["x" * (i + 1) for i in range(4 * MIN_PART + 1)]

    async def main():
        batcher = DynamicBatcher(slow_lengths, max_batch=256, max_wait_s=0, max_queue=1, workers=2)
        worker = asyncio.create_task(batcher.run())
        await asyncio.sleep(0)  # both workers wait for requests
        first = asyncio.ensure_future(batcher.submit(texts))
        await asyncio.sleep(0)  # queued as two parts: still one request
        assert len(batcher.waiting) == 2 and batcher.queued_requests() == 1
        with pytest.raises(QueueFull):
            await batcher.submit(["y"])
        rewards, spread = await first
        worker.cancel()
        batcher.close()
        return rewards, spread

    rewards, spread = asyncio.run(main())
    assert rewards.tolist() == [float(len(t)) for t in texts]  # in the request's order
    assert np.allclose(spread, rewards / 10)
    assert sorted(calls) == [2 * MIN_PART, 2 * MIN_PART + 1]


def test_a_small_request_stays_whole():
    calls: list[int] = []

    def lengths(texts):
        calls.append(len(texts))
        n = np.array([float(len(t)) for t in texts])
        return n, n

    async def main():
        batcher = DynamicBatcher(lengths, max_batch=256, max_wait_s=0, max_queue=4, workers=2)
        worker = asyncio.create_task(batcher.run())
        rewards, _ = await batcher.submit(["a"] * (2 * MIN_PART - 1))
        worker.cancel()
        batcher.close()
        return rewards

    assert asyncio.run(main()).tolist() == [1.0] * (2 * MIN_PART - 1)
    assert calls == [2 * MIN_PART - 1]
