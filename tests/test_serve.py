"""The reward-model bundle of a real small run, called by real clients: TRL's
GRPOTrainer, HTTP requests in OpenRLHF's format to `embrm serve`, the `embrm score` CLI;
and the bundle reproduces the run's own step 6-7 scores."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
import uvicorn
import yaml
from benchmark_files import v1_records, write

from embrm import RewardModel
from embrm.data.texts import cut_response
from embrm.evaluate.metrics import per_prompt_spearman
from embrm.io.errors import InputError
from embrm.io.jsonio import read_jsonl
from embrm.serve.cli import main as cli_main
from embrm.serve.server import Limits, create_app

from chat_templates import TEMPLATES, openrlhf_query, templated_tokenizer
from conftest import GEN_DATA, embrm_serve, run_snakemake

pytestmark = pytest.mark.workflow
BUNDLE = "results/reward_model"
EMBRM = str(Path(sys.executable).with_name("embrm"))  # the console script
PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle", ".joblib"}


@pytest.fixture(scope="module")
def run_dir(generated):
    """Steps 5-8 and the bundle added to the shared steps 1-4 folder."""
    workdir, cfg, _ = generated
    run_snakemake(workdir, cfg, BUNDLE)
    return workdir


@pytest.fixture(scope="module")
def samples(run_dir):
    """Flat (prompt, response) lists of the test split, prompt-major like its arrays."""
    rows = read_jsonl(run_dir / GEN_DATA / "test_samples.jsonl")
    prompts = [r["prompt"] for r in rows for _ in r["responses"]]
    return prompts, [x for r in rows for x in r["responses"]]


def test_step_6_reports_the_length_bias_of_generated_text(run_dir, samples):
    """On generated data step 6 reads the test texts: the golden rewards' within-prompt
    length correlation equals one computed here from the samples and the rewards."""
    ev = json.loads((run_dir / "results" / "eval_results.json").read_text())
    bias = ev["length_bias"]
    assert set(bias) >= {"golden", "mean", "min", "first"}
    rewards = np.load(run_dir / GEN_DATA / "test_rewards.npy").astype(np.float64)
    words = np.array([len(r.split()) for r in samples[1]], dtype=float).reshape(rewards.shape)
    expected = per_prompt_spearman(rewards, words)
    assert bias["golden"]["within_prompt_spearman"] == pytest.approx(expected)


def load(run_dir, **options) -> RewardModel:
    return RewardModel.from_pretrained(run_dir / BUNDLE, **options)


def test_bundle_is_pickle_free_and_describes_step_4(run_dir):
    bundle = run_dir / BUNDLE
    files = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    for name in (
        "config.json",
        "student.safetensors",
        "ensemble.safetensors",
        "README.md",
        "isotonic_teacher_map.json",
        "isotonic_student_map.json",
        "calibration_plot.png",
        "embedder/model.safetensors",
    ):
        assert name in files
    assert not [f for f in files if os.path.splitext(f)[1] in PICKLE_SUFFIXES]
    config = json.loads((bundle / "config.json").read_text())
    assert config["embedder"] == {
        "name": "tiny",
        "bundled": True,
        "pooling": "last",
        "normalize": False,
        "max_length": 256,
        "truncation": "keep_response",
        "batch_size": 64,
        "dtype": "float16",
        "text_format": config["embedder"]["text_format"],
    }
    assert config["input_dim"] == 64 and config["default_head"] == "student_isotonic_strict"
    assert config["ensemble"]["members"] == 5 and config["ensemble"]["aggregation"] == "mean"
    card = (bundle / "README.md").read_text()
    val = json.loads((run_dir / "results/validation_results.json").read_text())
    spearman = val["variants"]["student_isotonic"]["global_spearman"]
    assert f"| student_isotonic | {spearman:.4f} |" in card
    assert "](calibration_plot.png)" in card
    # every served head on the held-out prompts: calibration error and ties, in the card
    held_out = json.loads((bundle / "heads_held_out.json").read_text())
    heads = held_out["heads"]
    assert (
        list(heads) == config["heads"] and held_out["held_out_prompts"] == val["held_out_prompts"]
    )
    for head in ("student_isotonic", "student_isotonic_strict"):
        m = heads[head]
        assert f"| {head} | {m['mse']:.4f} | {m['within_prompt_ties']:.4f} |" in card
    assert "| student | n/a (raw scale) |" in card
    assert heads["student_isotonic_strict"]["within_prompt_ties"] == 0
    assert heads["student_isotonic"]["within_prompt_ties"] > 0
    # Hugging Face metadata: YAML between the first two "---" lines
    assert card.startswith("---\n")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["library_name"] == "embrm" and "reward-model" in meta["tags"]
    assert "base_model" not in meta  # the tiny embedder is built by the workflow, not a hub model
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics["mse"] == pytest.approx(heads["student_isotonic_strict"]["mse"], abs=1e-6)


def sklearn_map(path: Path, x: np.ndarray) -> np.ndarray:
    """The run's own ``.joblib`` map (written by this test's run, so trusted) applied by
    scikit-learn: an independent check of the bundle's JSON breakpoints."""
    return joblib.load(path).predict(np.ravel(x)).reshape(np.shape(x))


def test_bundle_reproduces_the_runs_scores(run_dir, samples):
    prompts, responses = samples
    res = run_dir / "results"
    student = np.load(res / "calibration/student_scores_harmless_bt.npy").ravel()
    members = np.load(res / "eval/test_scores.npy").reshape(len(student), -1)
    teacher = np.load(res / "calibration/split.npz")["teacher"].ravel()
    expected = {
        "student": student,
        "student_isotonic": sklearn_map(res / "isotonic_student_map.joblib", student),
        "teacher": teacher,
        "teacher_isotonic": sklearn_map(res / "isotonic_teacher_map.joblib", teacher),
    }
    for head, want in expected.items():
        got = np.asarray(load(run_dir, head=head).score(prompts, responses))
        assert np.abs(got - want).max() < 1e-4, head
    # the strict head: the student map's value at the centre of each flat step, strictly
    # increasing in between, of the student's score in float32: distinct texts never tie
    default = load(run_dir)
    strict = np.asarray(default.score(prompts, responses))
    raw = np.asarray(load(run_dir, head="student", dtype="float32").score(prompts, responses))
    assert np.allclose(strict, default.heads.student_map.strict(raw), atol=1e-9)
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(strict[order])[np.diff(raw[order]) > 0] > 0)
    texts = {p + cut_response(r) for p, r in zip(prompts, responses)}
    assert len(np.unique(strict)) == len(texts)
    assert len(np.unique(expected["student_isotonic"])) < len(texts) / 2  # the staircase ties
    iso = joblib.load(res / "isotonic_student_map.joblib")
    xs, ys = iso.X_thresholds_, iso.y_thresholds_
    starts = np.flatnonzero(np.r_[True, np.diff(ys) > 0])
    centres = (xs[starts] + xs[np.r_[starts[1:], len(ys)] - 1]) / 2
    assert np.allclose(default.heads.student_map.strict(centres), iso.predict(centres))
    # the bundle's held-out report is what the served head gives those texts
    held = np.load(res / "calibration/split.npz")["split"] == 2
    golden = np.load(run_dir / GEN_DATA / "test_rewards.npy").astype(np.float64)[held]
    report = json.loads((run_dir / BUNDLE / "heads_held_out.json").read_text())["heads"]
    mse = np.mean((strict.reshape(held.shape[0], -1)[held] - golden) ** 2)
    assert report["student_isotonic_strict"]["mse"] == pytest.approx(mse, abs=1e-5)
    # the conservative reward subtracts the spread of the members on the golden scale
    rm = load(run_dir, head="student_isotonic", conservative=2.0)
    texts = [p + cut_response(r) for p, r in zip(prompts, responses)]
    reward, spread = rm.rewards_and_spread(texts)
    mapped_std = sklearn_map(res / "isotonic_teacher_map.joblib", members).std(1)
    assert np.abs(spread - mapped_std).max() < 1e-4 and spread.max() > 0
    assert np.abs(reward - (expected["student_isotonic"] - 2.0 * mapped_std)).max() < 1e-4
    # P(a > b): the members' mean Bradley-Terry margin
    p_ab = rm.prefer(prompts[0], responses[0], responses[1])
    want = 1 / (1 + np.exp(-(members[0] - members[1]).mean()))
    assert abs(p_ab - want) < 1e-4
    assert abs(p_ab + rm.prefer(prompts[0], responses[1], responses[0]) - 1) < 1e-9


def test_trl_grpo_trains_on_the_bundle_reward(run_dir, samples, tmp_path):
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    rm = load(run_dir)
    policy = str(run_dir / "results/models/tiny/policy")
    prompts = sorted(set(samples[0]))[:4]
    args = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=8,
        num_generations=8,
        max_completion_length=8,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        seed=0,
    )
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=[rm],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=AutoTokenizer.from_pretrained(policy, padding_side="left"),
    )
    trainer.train()
    logged = [h for h in trainer.state.log_history if "rewards/RewardModel/mean" in h]
    assert len(logged) == 2
    # the default head never ties distinct completions: every group has reward spread
    # (the staircase head gave GRPO groups zero spread), and the ensemble's spread is logged
    assert all(h["frac_reward_zero_std"] == 0 for h in logged)
    assert all(h["reward_model/ensemble_std"] > 0 for h in logged)
    assert all(h["reward_model/unrecognised_format"] == 0 for h in logged)
    # the last batch the trainer scored: the bundle gives those completions those rewards
    batch_prompts, completions = list(trainer._logs["prompt"]), list(trainer._logs["completion"])
    rewards = np.asarray(trainer._logs["rewards"]["RewardModel"])
    assert len(rewards) == 8 and all(isinstance(c, str) for c in completions)
    distinct = len(set(zip(batch_prompts, completions)))
    assert len(set(rewards.tolist())) == distinct
    # the staircase head ties some of these same completions: the test can tell them apart
    staircase = load(run_dir, head="student_isotonic")
    assert len(set(staircase(prompts=batch_prompts, completions=completions))) < distinct
    assert np.allclose(rm(prompts=batch_prompts, completions=completions), rewards, atol=1e-3)
    assert abs(logged[-1]["rewards/RewardModel/mean"] - rewards.mean()) < 1e-5
    # conversational format: message lists give the same text, hence the same reward
    question = "How do I bake bread?"
    standard = rm(prompts=[f"\n\nHuman: {question}\n\nAssistant:"], completions=[" Use flour."])
    chat = rm(
        prompts=[
            [{"role": "system", "content": "Be kind."}, {"role": "user", "content": question}]
        ],
        completions=[[{"role": "assistant", "content": "Use flour."}]],
    )
    assert chat == standard


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(run_dir, tmp_path_factory):
    """`embrm serve` on a loopback port with its access log, stopped after the module:
    ``(url, process, log file)``."""
    logfile = tmp_path_factory.mktemp("serve") / "serve.log"
    limits = ["--access-log", "--max-texts", "8", "--max-body-bytes", "65536"]
    with embrm_serve(run_dir / BUNDLE, logfile, *limits) as (url, proc):
        yield url, proc, logfile


def openrlhf_post(url: str, payload: dict) -> httpx.Response:
    """OpenRLHF 0.11's request byte for byte: aiohttp's ``session.post(url, json=payload)``
    sends ``json.dumps(payload)`` as UTF-8 with ``Content-Type: application/json``."""
    body = json.dumps(payload).encode()
    return httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=60)


def test_server_answers_openrlhf_requests(run_dir, samples, server):
    url, proc, logfile = server
    prompts, responses = samples
    rm = load(run_dir)
    # OpenRLHF decodes prompt + response with special tokens kept, one sample a request
    i = 3
    reply = openrlhf_post(
        f"{url}/get_reward",
        {
            "query": [prompts[i] + responses[i] + "<|endoftext|>"],
            "prompts": [prompts[i]],
            "labels": [None],
        },  # fmt: skip
    )
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"rewards", "scores", "extra_logs"}
    assert abs(body["rewards"][0] - rm.score([prompts[i]], [responses[i]])[0]) < 1e-4
    assert 0 <= body["scores"][0] <= 1 and body["extra_logs"]["split_at_prompt"] == [1.0]
    # 16 concurrent clients: every answer is its own text's reward
    want = rm.score(prompts[:16], responses[:16])

    def one(j):
        payload = {"query": [prompts[j] + responses[j]], "prompts": [prompts[j]], "labels": [""]}
        return openrlhf_post(f"{url}/get_reward", payload).json()["rewards"][0]

    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(one, range(16)))
    assert np.allclose(got, want, atol=1e-3)
    # the startup line says where it listens and that it is open; one access line a request
    log = logfile.read_text()
    assert f"on {url}/get_reward; no authentication" in log
    assert log.count('"POST /get_reward" 200 1 texts') >= 17


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"\xff\xfe", 400),
        (json.dumps({"prompts": ["a"]}).encode(), 422),
        (json.dumps({"query": "a single string"}).encode(), 422),
        (json.dumps({"query": [1, 2]}).encode(), 422),
        (json.dumps({"query": ["a", "b"], "prompts": ["a"]}).encode(), 422),
        (json.dumps({"query": ["q"] * 9}).encode(), 413),
        (json.dumps({"query": ["x" * 40_000]}).encode(), 413),  # over --max-chars
        (json.dumps({"query": ["x" * 70_000]}).encode(), 413),  # over --max-body-bytes
    ],
)
def test_server_rejects_bad_requests_and_keeps_serving(server, body, status):
    url, proc, _ = server
    reply = httpx.post(f"{url}/get_reward", content=body, timeout=60,
                       headers={"Content-Type": "application/json"})  # fmt: skip
    assert reply.status_code == status and "error" in reply.json()
    assert proc.poll() is None
    good = openrlhf_post(f"{url}/get_reward", {"query": ["\n\nHuman: hi\n\nAssistant: hello"]})
    assert good.status_code == 200 and good.json()["extra_logs"]["split_at_prompt"] == [0.0]


def test_cli_scores_pairs_with_accuracy(run_dir, samples, tmp_path):
    prompts, responses = samples
    golden = np.load(run_dir / GEN_DATA / "test_rewards.npy").ravel()
    rows = []
    for j in range(0, 20, 2):
        better = j if golden[j] > golden[j + 1] else j + 1
        rows.append({"prompt": prompts[j], "chosen": responses[better],
                     "rejected": responses[2 * j + 1 - better]})  # fmt: skip
    src, out = tmp_path / "pairs.jsonl", tmp_path / "scored.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cmd = [EMBRM, "score", str(run_dir / BUNDLE),
           "--input", str(src), "--output", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    scored = read_jsonl(out)
    rm = load(run_dir)
    want = rm.score([r["prompt"] for r in rows], [r["chosen"] for r in rows])
    assert np.allclose([r["reward_chosen"] for r in scored], want, atol=1e-3)
    accuracy = np.mean([r["reward_chosen"] > r["reward_rejected"] for r in scored])
    assert f"pair accuracy: {accuracy:.4f} (10 pairs)" in proc.stderr
    assert "100%" in proc.stderr  # the progress bar ran to the end


def test_cli_scores_a_benchmark_with_the_bundle_head(run_dir, tmp_path):
    """``--benchmark``: each v1 item is right where the bundle's reward of its chosen
    text beats its rejected one's, both read as HH turns (as step 4 reads pairs)."""
    src, out = write(tmp_path / "rb.jsonl", "v1"), tmp_path / "rb.json"
    cmd = [EMBRM, "score", str(run_dir / BUNDLE), "--benchmark", str(src),
           "--layout", "v1", "--output", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    rm = load(run_dir)
    records = v1_records()
    prompts = [f"\n\nHuman: {r['prompt']}\n\nAssistant:" for r in records]
    chosen = rm.score(prompts, [" " + r["chosen"] for r in records])
    rejected = rm.score(prompts, [" " + r["rejected"] for r in records])
    right = {}
    for r, c, j in zip(records, chosen, rejected):
        right.setdefault(r["subset"], []).append(c > j)
    assert res["subsets"] == pytest.approx({k: np.mean(v) for k, v in right.items()})
    assert res["items"] == 9 and res["head"] == rm.head
    lo, hi = res["ci95"]["overall"]
    assert lo <= res["overall"] <= hi
    assert f"overall {res['overall']:.4f}" in proc.stderr


def test_chat_template_queries_get_the_training_dialogues_reward(run_dir, samples, server):
    """OpenRLHF with a chat-template policy: ChatML, Llama 3 and Gemma queries are read
    as the HH dialogue the embedder was trained on, so they get its reward."""
    url, _, _ = server
    prompts, responses = samples
    rm = load(run_dir)
    picks = [0, 7, 13]
    want = rm.score([prompts[i] for i in picks], [" " + responses[i].strip() for i in picks])
    for name in ("chatml", "llama3", "gemma"):
        tok = templated_tokenizer(name)
        pairs = [openrlhf_query(tok, prompts[i], responses[i].strip(), TEMPLATES[name][2])
                 for i in picks]  # fmt: skip
        payload = {"query": [q for q, _ in pairs], "prompts": [p for _, p in pairs]}
        body = openrlhf_post(f"{url}/get_reward", payload).json()
        assert np.allclose(body["rewards"], want, atol=1e-4), name
        assert body["extra_logs"]["unrecognised_format"] == [0.0] * len(picks)
    # text in no known format is scored as given, and counted
    body = openrlhf_post(f"{url}/get_reward", {"query": ["Tell me a joke. No."]}).json()
    assert body["extra_logs"]["unrecognised_format"] == [1.0]
    assert body["rewards"][0] == pytest.approx(rm.score_texts(["Tell me a joke. No."])[0], abs=1e-4)
    assert httpx.get(f"{url}/health").json()["formats"]["None"] >= 1


def test_bad_clients_fail_alone_among_concurrent_good_ones(run_dir, samples, server):
    """A lone surrogate passes JSON but no tokenizer: its request gets a 422 naming field
    and index, while concurrent good requests (batched with it) get their rewards."""
    url, proc, _ = server
    prompts, responses = samples
    want = load(run_dir).score(prompts[:24], responses[:24])

    def client(j):
        query = [prompts[j] + responses[j], "fine"]
        if j % 3 == 0:
            query[1] = "broken \ud800 text"
        return j, openrlhf_post(f"{url}/get_reward", {"query": query,
                                                      "prompts": [prompts[j], ""]})  # fmt: skip

    with ThreadPoolExecutor(24) as pool:
        replies = list(pool.map(client, range(24)))
    for j, reply in replies:
        if j % 3 == 0:
            assert reply.status_code == 422, reply.text
            assert reply.json()["field"] == "query" and reply.json()["index"] == 1
            assert "query[1]: not valid Unicode" in reply.json()["error"]
        else:
            assert reply.status_code == 200
            assert reply.json()["rewards"][0] == pytest.approx(want[j], abs=1e-3)
    assert proc.poll() is None


def test_empty_deep_and_unknown_requests_get_json_answers(server):
    url, proc, _ = server
    # OpenRLHF 0.11 sends empty shards to all but one of several reward servers
    empty = openrlhf_post(f"{url}/get_reward", {"query": [], "prompts": [], "labels": []})
    assert empty.status_code == 200 and empty.json()["rewards"] == []
    assert empty.json()["extra_logs"]["ensemble_std"] == []
    deep = httpx.post(f"{url}/get_reward", content=b"[" * 100_000 + b"]" * 100_000,
                      headers={"Content-Type": "application/json"}, timeout=60)  # fmt: skip
    assert deep.status_code in (400, 413) and "error" in deep.json()
    nested = httpx.post(f"{url}/get_reward", content=b'{"query": ' + b"[" * 5000 + b"]" * 5000
                        + b"}", timeout=60)  # fmt: skip
    assert nested.status_code == 400 and "nested too deeply" in nested.json()["error"]
    for reply in (httpx.get(f"{url}/nowhere"), httpx.get(f"{url}/get_reward")):
        assert reply.status_code in (404, 405) and "error" in reply.json()
    assert proc.poll() is None


def _serve_in_thread(app):
    """``app`` on a loopback port in this process, in a thread: ``(url, server)``."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=_free_port(), log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return f"http://127.0.0.1:{server.config.port}", server


@contextmanager
def serving(app):
    url, server = _serve_in_thread(app)
    try:
        yield url
    finally:
        server.should_exit = True


class Gated:
    """The bundle's model, whose scoring waits until ``gate`` opens: the test decides
    when the worker is busy. Everything else is the real model's."""

    def __init__(self, rm):
        self.rm, self.gate, self.entered = rm, threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self.rm, name)

    def rewards_and_spread(self, texts):
        self.entered.set()
        assert self.gate.wait(60)
        return self.rm.rewards_and_spread(texts)


def _wait_for(url, key, value):
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/health").json()[key] != value:
        assert time.monotonic() < deadline, f"{key} never reached {value}"
        time.sleep(0.02)


def test_a_busy_server_says_when_to_retry_and_drops_gone_clients(run_dir):
    model = Gated(load(run_dir))
    text = "\n\nHuman: Hi\n\nAssistant: Hello"
    body = json.dumps({"query": [text]}).encode()
    with serving(create_app(model, Limits(max_queue=1))) as url, ThreadPoolExecutor(4) as pool:
        first = pool.submit(openrlhf_post, f"{url}/get_reward", {"query": [text]})
        assert model.entered.wait(30)  # the worker holds it, waiting for the gate
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as gone:  # sends, then hangs up
            head = b"POST /get_reward HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            gone.sendall(head % len(body) + body)
            _wait_for(url, "queued", 1)
            full = openrlhf_post(f"{url}/get_reward", {"query": [text]})
        assert full.status_code == 503 and int(full.headers["Retry-After"]) >= 1
        assert "retry" in full.json()["error"]
        _wait_for(url, "dropped_disconnected", 1)  # unqueued once its client left
        second = pool.submit(openrlhf_post, f"{url}/get_reward", {"query": [text]})
        _wait_for(url, "queued", 1)
        model.gate.set()
        assert first.result().status_code == 200 and second.result().status_code == 200
        health = httpx.get(f"{url}/health").json()
    assert health["texts_scored"] == 2 and health["dropped_disconnected"] == 1


def test_a_token_is_asked_for_when_set(run_dir):
    payload = {"query": ["\n\nHuman: Hi\n\nAssistant: Hello"]}
    with serving(create_app(load(run_dir), token="s3cret")) as url:
        bare = openrlhf_post(f"{url}/get_reward", payload)
        assert bare.status_code == 401 and bare.headers["WWW-Authenticate"] == "Bearer"
        wrong = httpx.post(f"{url}/get_reward", json=payload, headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 401 and "error" in wrong.json()
        header = httpx.post(f"{url}/get_reward", json=payload,
                            headers={"Authorization": "Bearer s3cret"})  # fmt: skip
        in_url = openrlhf_post(f"{url}/get_reward?token=s3cret", payload)  # OpenRLHF: a URL only
        assert header.status_code == in_url.status_code == 200
        assert header.json()["rewards"] == in_url.json()["rewards"]


def test_the_bundle_tokenizers_own_template_on_every_entry_point(run_dir, samples, tmp_path):
    """A bundle whose embedder tokenizer has a chat template (Zephyr's, which no built-in
    format knows): its texts read as the HH dialogue in Python, TRL, HTTP and the CLI."""
    from transformers import AutoTokenizer

    bundle = tmp_path / "reward_model"
    shutil.copytree(run_dir / BUNDLE, bundle)
    tok = AutoTokenizer.from_pretrained(bundle / "embedder")
    tok.chat_template = TEMPLATES["zephyr"][0]
    tok.save_pretrained(bundle / "embedder")
    prompts, responses = samples
    picks = [1, 8]
    hh_prompts = [prompts[i] for i in picks]
    answers = [responses[i].strip() for i in picks]
    want = load(run_dir).score(hh_prompts, [" " + a for a in answers])
    rm = RewardModel.from_pretrained(bundle)
    pairs = [openrlhf_query(tok, p, a, "<|endoftext|>") for p, a in zip(hh_prompts, answers)]
    queries, chat_prompts = [q for q, _ in pairs], [p for _, p in pairs]
    responses_only = [q[len(p) :] for q, p in pairs]
    assert np.allclose(rm.score_texts(queries), want, atol=1e-4)
    assert np.allclose(rm.score(chat_prompts, responses_only), want, atol=1e-4)
    assert np.allclose(rm(prompts=chat_prompts, completions=responses_only), want, atol=1e-4)
    assert rm.formats_seen["template"] == 6 and rm.formats_seen[None] == 0
    assert not np.allclose(load(run_dir).score_texts(queries), want, atol=1e-4)  # unread
    with serving(create_app(rm)) as url:
        body = openrlhf_post(f"{url}/get_reward", {"query": queries, "prompts": chat_prompts})
    assert np.allclose(body.json()["rewards"], want, atol=1e-4)
    src, out = tmp_path / "chat.jsonl", tmp_path / "scored.jsonl"
    src.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n"
                           for p, r in zip(chat_prompts, responses_only)))  # fmt: skip
    cmd = [EMBRM, "score", str(bundle), "--input", str(src), "--output", str(out),
           "--device", "cpu", "--dtype", "auto"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert np.allclose([r["reward"] for r in read_jsonl(out)], want, atol=1e-4)


def test_device_and_dtype_are_chosen_at_load(run_dir, samples):
    prompts, responses = samples
    default = load(run_dir)
    assert default.device.type == "cpu" and default.heads.precision in ("bf16", "fp32")
    fp32 = load(run_dir, device="cpu", dtype="float32")
    assert fp32.heads.precision == "fp32" and str(fp32.dtype) == "torch.float32"
    a = np.asarray(default.score(prompts[:20], responses[:20]))
    b = np.asarray(fp32.score(prompts[:20], responses[:20]))
    assert np.abs(a - b).max() < 0.05  # bf16 rounding of the heads at most
    bf16 = load(run_dir, device="cpu", dtype="bfloat16")
    assert str(bf16.dtype) == "torch.bfloat16" and bf16.heads.precision == "bf16"
    assert np.isfinite(bf16.score(prompts[:4], responses[:4])).all()
    with pytest.raises(InputError, match="dtype must be one of"):
        load(run_dir, dtype="int8")
    if not __import__("torch").cuda.is_available():
        with pytest.raises(InputError, match="no CUDA device"):
            load(run_dir, device="cuda")


def test_cli_names_the_bad_row(run_dir, samples, tmp_path, capsys):
    """Every row is checked before the model loads; a bad one is named by file and line."""
    prompts, responses = samples
    good = [json.dumps({"prompt": prompts[i], "response": responses[i]}) for i in range(3)]
    cases = {
        "missing": ([*good[:2], "", json.dumps({"prompt": "p"})], ":4: missing ['response']"),
        "surrogate": (
            [good[0], '{"prompt": "p", "response": "x\\ud800"}'],
            ":2: field 'response': not valid Unicode",
        ),  # fmt: skip
        "not json": ([*good, "{oops"], ":4: not valid JSON"),
        "not an object": ([good[0], "[1, 2]"], ":2: expected a JSON object, got list"),
    }
    for name, (lines, message) in cases.items():
        src = tmp_path / f"{name.replace(' ', '_')}.jsonl"
        src.write_text("\n".join(lines) + "\n")
        with pytest.raises(SystemExit) as exit_:
            cli_main(["score", str(run_dir / BUNDLE), "--input", str(src)])
        assert f"{src}{message}" in str(exit_.value.code), name
        assert not capsys.readouterr().out


def test_a_whole_rollout_batch_fits_in_one_request_by_default(run_dir, samples):
    """OpenRLHF <= 0.9 posts its rollout batch in one request: 1024 queries pass the
    default limits and get 1024 rewards, the model's own."""
    prompts, responses = samples
    n = 1024
    idx = np.arange(n) % len(prompts)
    payload = {
        "query": [prompts[i] + responses[i] for i in idx],
        "prompts": [prompts[i] for i in idx],
    }
    rm = load(run_dir)
    with serving(create_app(rm)) as url:
        reply = openrlhf_post(f"{url}/get_reward", payload)
    assert reply.status_code == 200 and len(reply.json()["rewards"]) == n
    want = np.asarray(rm.score(prompts, responses))[idx]
    assert np.allclose(reply.json()["rewards"], want, atol=1e-3)


def test_model_processes_score_as_the_model_and_fail_fast_when_gone(run_dir, tmp_path):
    from embrm.serve.process import ModelProcesses, ScoringError

    with pytest.raises(InputError, match="no config.json"):
        ModelProcesses(tmp_path, workers=1, threads=1)
    procs = ModelProcesses(run_dir / BUNDLE, workers=1, threads=1, head="teacher")
    try:
        text = "\n\nHuman: Hi\n\nAssistant: Hello"
        want = load(run_dir, head="teacher").rewards_and_spread([text])
        assert np.allclose(procs.rewards_and_spread([text]), want, atol=1e-6)
        assert procs.head == "teacher" and procs.golden_range == load(run_dir).golden_range
        procs.procs[0].kill()  # e.g. the kernel's out-of-memory killer
        procs.procs[0].join(10)
        with pytest.raises(ScoringError, match="gone"):
            procs.rewards_and_spread([text])
        start = time.monotonic()
        with pytest.raises(ScoringError, match="no model process is left"):
            procs.rewards_and_spread([text])  # at once, not blocked on a free process
        assert time.monotonic() - start < 1 and procs.live == 0
    finally:
        procs.close()
