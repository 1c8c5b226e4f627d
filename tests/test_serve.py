"""The reward-model bundle of a real small run, called by real clients: TRL's
GRPOTrainer, HTTP requests in OpenRLHF's format to `embrm serve`, the `embrm score` CLI;
and the bundle reproduces the run's own step 6-7 scores."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest

from embrm import RewardModel
from embrm.evaluate.metrics import per_prompt_spearman
from embrm.generation.texts import cut_response
from embrm.io.jsonio import read_jsonl

from conftest import GEN_DATA, run_snakemake

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
    assert config["input_dim"] == 64 and config["default_head"] == "student_isotonic"
    assert config["ensemble"]["members"] == 5 and config["ensemble"]["aggregation"] == "mean"
    card = (bundle / "README.md").read_text()
    val = json.loads((run_dir / "results/validation_results.json").read_text())
    spearman = val["variants"]["student_isotonic"]["global_spearman"]
    assert f"| student_isotonic | {spearman:.4f} |" in card
    assert "](calibration_plot.png)" in card


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
    # the conservative reward subtracts the spread of the members on the golden scale
    rm = load(run_dir, conservative=2.0)
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
        per_device_train_batch_size=4,
        num_generations=4,
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
    # the last batch the trainer scored: the bundle gives those completions those rewards
    batch_prompts, completions = list(trainer._logs["prompt"]), list(trainer._logs["completion"])
    rewards = np.asarray(trainer._logs["rewards"]["RewardModel"])
    assert len(rewards) == 4 and all(isinstance(c, str) for c in completions)
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
def server(run_dir):
    """`embrm serve` on a loopback port, stopped after the module."""
    port = _free_port()
    cmd = [EMBRM, "serve", str(run_dir / BUNDLE),
           "--port", str(port), "--max-texts", "8", "--max-body-bytes", "65536"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"server did not start:\n{proc.stdout.read()}")
    yield url, proc
    proc.terminate()
    proc.wait(timeout=30)


def openrlhf_post(url: str, payload: dict) -> httpx.Response:
    """OpenRLHF 0.11's request byte for byte: aiohttp's ``session.post(url, json=payload)``
    sends ``json.dumps(payload)`` as UTF-8 with ``Content-Type: application/json``."""
    body = json.dumps(payload).encode()
    return httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=60)


def test_server_answers_openrlhf_requests(run_dir, samples, server):
    url, proc = server
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
    url, proc = server
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
