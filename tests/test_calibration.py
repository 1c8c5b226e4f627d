import joblib
import numpy as np
import pytest

from embrm.calibrate.isotonic import (
    calibrate_teacher,
    fit_isotonic,
    grouped_oof,
    save_map,
    split_prompts,
)
from embrm.io.errors import InputError
from embrm.io.jsonio import read_json


def _teacher_data(n=100, k=20, seed=0):
    rng = np.random.default_rng(seed)
    golden = rng.normal(0, 2, (n, k))
    teacher = np.exp(golden / 2) + rng.normal(0, 0.3, (n, k))  # monotone but wrong scale
    return teacher, golden


def test_isotonic_map_keeps_order_and_reduces_mse(tmp_path):
    teacher, golden = _teacher_data()
    iso = fit_isotonic(teacher[:60], golden[:60])
    pred = iso.predict(teacher[60:].ravel())
    raw_mse = np.mean((teacher[60:].ravel() - golden[60:].ravel()) ** 2)
    cal_mse = np.mean((pred - golden[60:].ravel()) ** 2)
    assert cal_mse < 0.5 * raw_mse
    order = np.argsort(teacher[60:].ravel())
    assert (np.diff(pred[order]) >= 0).all()
    assert iso.predict([1e9])[0] == pytest.approx(iso.y_thresholds_[-1])  # clipped
    save_map(iso, [tmp_path / "m.joblib"], tmp_path / "m.json")
    twin = read_json(tmp_path / "m.json")
    probe = np.linspace(teacher.min() - 1, teacher.max() + 1, 101)
    assert np.allclose(np.interp(probe, twin["x"], twin["y"]), iso.predict(probe))
    assert np.allclose(joblib.load(tmp_path / "m.joblib").predict(probe), iso.predict(probe))


def test_out_of_fold_targets_never_come_from_their_own_fold():
    teacher, golden = _teacher_data(n=50)
    oof, fold = grouped_oof(teacher, golden, 5, seed=3)
    assert sorted(np.bincount(fold)) == [10] * 5
    for f in range(5):
        held = fold == f
        outside = fit_isotonic(teacher[~held], golden[~held]).predict(teacher[held].ravel())
        assert np.allclose(oof[held].ravel(), outside)
        inside = fit_isotonic(teacher, golden).predict(teacher[held].ravel())
        assert not np.allclose(oof[held].ravel(), inside)


def test_split_is_by_prompt_with_requested_fractions():
    split = split_prompts(200, [0.6, 0.2, 0.2], seed=1)
    assert split.shape == (200,)  # one label per prompt: no prompt can sit on two sides
    assert np.bincount(split).tolist() == [120, 40, 40]
    assert np.array_equal(split, split_prompts(200, [0.6, 0.2, 0.2], seed=1))
    with pytest.raises(InputError, match="empty"):
        split_prompts(3, [0.8, 0.1, 0.1], seed=0)


def _calibrate_teacher(tmp_path, split_name="split.npz"):
    """Step 7a on the arrays a test saved as scores.npy, emb.npy and rew.npy."""
    return calibrate_teacher(
        test_scores=tmp_path / "scores.npy",
        embeddings=tmp_path / "emb.npy",
        rewards=tmp_path / "rew.npy",
        teacher_map=tmp_path / "t.joblib",
        legacy_map=tmp_path / "legacy.joblib",
        map_json=tmp_path / "t.json",
        split=tmp_path / split_name,
        report=tmp_path / "r.json",
        split_fractions=[0.6, 0.2, 0.2],
        cv_folds=5,
        seed=0,
    )


def test_calibrate_teacher_writes_out_of_fold_targets_only_outside_held_out(tmp_path):
    teacher, golden = _teacher_data()
    scores = np.repeat(teacher[..., None], 3, axis=2).astype(np.float32)
    np.save(tmp_path / "scores.npy", scores)
    np.save(tmp_path / "rew.npy", golden.astype(np.float32))
    np.save(tmp_path / "emb.npy", np.zeros((100, 20, 2), np.float32))
    report = _calibrate_teacher(tmp_path)
    data = np.load(tmp_path / "split.npz")
    assert np.isnan(data["targets"][data["split"] == 2]).all()
    assert np.isfinite(data["targets"][data["split"] < 2]).all()
    # in-sample fit is optimistic: out-of-fold error is the honest one
    assert report["calibration_mse_out_of_fold"] > report["calibration_mse_in_sample"]
    assert report["split_prompts"] == {"calibration": 60, "student_train": 20, "held_out": 20}


def test_stale_scores_are_rejected_before_fitting(tmp_path):
    np.save(tmp_path / "scores.npy", np.zeros((10, 5, 2), np.float32))
    np.save(tmp_path / "rew.npy", np.zeros((12, 5), np.float32))
    np.save(tmp_path / "emb.npy", np.zeros((12, 5, 2), np.float32))
    with pytest.raises(InputError, match=r"scores\.npy.*\(10, 5, 2\).*\(12, 5\)"):
        _calibrate_teacher(tmp_path, "s.npz")
    assert not (tmp_path / "t.joblib").exists()
