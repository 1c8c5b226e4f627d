import numpy as np
import pytest

from embrm.data import arrays
from embrm.data.arrays import iter_chunks, iter_rows, load_split
from embrm.data.importer import release_paths
from embrm.data.synthetic import generate
from embrm.io.errors import InputError

from conftest import import_release


@pytest.mark.parametrize(("max_prompts", "chunk", "n"), [(None, 3, 7), (5, 2, 5)])
def test_import_round_trips_a_response_major_release(tmp_path, max_prompts, chunk, n):
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((4, 7, 3)).astype(np.float32)  # (K, N, D)
    rew = rng.standard_normal((4, 7)).astype(np.float32)  # (K, N)
    src_e, src_r = release_paths(tmp_path, "hh", "gemma2b", "gemma7b", "ray", "train")
    np.save(src_e, emb)
    np.save(src_r, rew)
    assert src_e.name == "EMBD_hh_gemma2b_gemma7b_train.npy"
    assert src_r.name == "REWARD_hh_ray_gemma2b_train.npy"
    out = tmp_path / "out"
    shape = import_release(src_e, src_r, out, max_prompts=max_prompts, chunk=chunk)
    assert shape == (n, 4, 3)
    out_e, out_r = load_split(out / "train_embeddings.npy", out / "train_rewards.npy")
    assert np.array_equal(out_e, emb.transpose(1, 0, 2)[:n])
    assert np.array_equal(out_r, rew.T[:n])


def test_import_rejects_mismatched_release(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((4, 7, 3), np.float32))
    np.save(tmp_path / "r.npy", np.zeros((4, 6), np.float32))
    with pytest.raises(
        InputError, match=r"e\.npy has shape \(4, 7, 3\).*r\.npy has shape \(4, 6\)"
    ):
        import_release(tmp_path / "e.npy", tmp_path / "r.npy", tmp_path / "out")


def test_shape_mismatch_names_both_files_and_shapes(tmp_path):
    np.save(tmp_path / "emb.npy", np.zeros((5, 3, 2), np.float32))
    np.save(tmp_path / "rew.npy", np.zeros((5, 4), np.float32))
    with pytest.raises(
        InputError, match=r"emb\.npy has shape \(5, 3, 2\).*rew\.npy has shape \(5, 4\)"
    ):
        load_split(tmp_path / "emb.npy", tmp_path / "rew.npy")


def test_nan_names_the_file_and_row(tmp_path):
    emb = np.zeros((6, 3, 2), np.float32)
    emb[4, 1, 0] = np.nan
    np.save(tmp_path / "emb.npy", emb)
    np.save(tmp_path / "rew.npy", np.zeros((6, 3), np.float32))
    with pytest.raises(InputError, match=r"emb\.npy: non-finite .* row 4"):
        load_split(tmp_path / "emb.npy", tmp_path / "rew.npy")


def test_missing_and_wrong_rank_files_are_named(tmp_path):
    with pytest.raises(InputError, match=r"nope\.npy: file not found"):
        load_split(tmp_path / "nope.npy", tmp_path / "rew.npy")
    np.save(tmp_path / "emb.npy", np.zeros((5, 3), np.float32))
    with pytest.raises(InputError, match=r"emb\.npy: expected 3 dimensions, found shape \(5, 3\)"):
        load_split(tmp_path / "emb.npy", tmp_path / "rew.npy")


def test_chunked_reads_equal_the_array(tmp_path):
    arr = np.arange(7 * 3 * 2, dtype=np.float32).reshape(7, 3, 2)
    np.save(tmp_path / "a.npy", arr)
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    blocks = [b for _, b in iter_chunks(mm, 3)]
    assert [b.shape[0] for b in blocks] == [3, 3, 1]
    assert np.array_equal(np.concatenate(blocks), arr)


def test_row_gather_equals_fancy_indexing_across_chunks(tmp_path, monkeypatch):
    """A sparse gather reads chunk by chunk (never through the memory map) and returns the
    same rows as indexing the array; it stops after the last prompt it needs."""
    arr = np.random.default_rng(0).standard_normal((9, 4, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", arr)
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    monkeypatch.setattr(arrays, "CHECK_BYTES", 2 * 4 * 3 * 4)  # two prompts per chunk
    rows = np.array([1, 2, 9, 10, 11, 21, 25])
    blocks = list(iter_rows(mm, rows))
    assert [s for s, _ in blocks] == [0, 2, 5, 6]  # prompts 0-1, 2-3, 4-5, 6-7; not 8
    got = np.concatenate([b for _, b in blocks])
    assert np.array_equal(got, arr.reshape(-1, 3)[rows])


@pytest.mark.parametrize("model", ["smooth", "rough", "prompt_heavy"])
def test_synthetic_data_is_deterministic_and_on_a_realistic_scale(tmp_path, model):
    def make(d):
        out = {
            f"{s}_{k}": d / f"{s}_{k}.npy"
            for s in ("train", "test")
            for k in ("embeddings", "rewards")
        }
        generate(**out, n_train=600, n_test=20, k_train=10, k_test=30, dim=32, seed=5, model=model)
        return out

    a, b = make(tmp_path / "a"), make(tmp_path / "b")
    for key in a:
        assert np.array_equal(np.load(a[key]), np.load(b[key]))
    rew = np.load(a["train_rewards"])
    assert rew.shape == (600, 10) and np.load(a["test_embeddings"]).shape == (20, 30, 32)
    assert 1.5 < rew.std() < 2.5


def planted_train_split(folder, model: str, *, n_train: int, seed: int):
    """The train split ``(n_train, 10, 64)`` / ``(n_train, 10)`` of a planted ``model``,
    as float64 arrays."""
    out = {
        f"{s}_{k}": folder / f"{s}_{k}.npy"
        for s in ("train", "test")
        for k in ("embeddings", "rewards")
    }
    generate(**out, n_train=n_train, n_test=5, k_train=10, k_test=5, dim=64, seed=seed, model=model)
    return (np.load(out[f"train_{k}"]).astype(np.float64) for k in ("embeddings", "rewards"))


def test_rough_rewards_are_far_from_linear_in_the_embedding(tmp_path):
    """The benchmark's hard setting: a least-squares linear fit of the golden reward on
    the embedding explains much less of the within-prompt order than for ``smooth``."""

    def within_prompt_r2(model):
        x, r = planted_train_split(tmp_path / model, model, n_train=2000, seed=1)
        x -= x.mean(1, keepdims=True)  # the prompt's share is the same for all its responses
        r -= r.mean(1, keepdims=True)
        coef, *_ = np.linalg.lstsq(x.reshape(-1, 64), r.ravel(), rcond=None)
        return 1 - ((x.reshape(-1, 64) @ coef - r.ravel()) ** 2).mean() / (r**2).mean()

    # measured: smooth 0.89, rough 0.11
    assert within_prompt_r2("smooth") > 0.8 and within_prompt_r2("rough") < 0.6


def test_prompt_heavy_puts_most_reward_variance_between_prompts(tmp_path):
    """``prompt_heavy``: about 60 % of the variance is the prompt's (documented), against
    about 10 % for the other families."""

    def between_share(model):
        _, r = planted_train_split(tmp_path / model, model, n_train=3000, seed=2)
        within = r.var(1, ddof=1).mean()
        # the mean of K responses carries 1/K of the within-prompt variance: remove it
        between = r.mean(1).var() - within / r.shape[1]
        return between / (between + within)

    # measured: prompt_heavy 0.60, smooth 0.07, rough 0.10
    assert 0.55 < between_share("prompt_heavy") < 0.65
    assert between_share("smooth") < 0.2 and between_share("rough") < 0.2
