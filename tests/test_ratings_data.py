"""Rated responses (data.source: ratings): reading, checking and prompt-disjoint splits of
a local file, and pairs with margins derived from what was read."""

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from embrm.data.ratings import parse_ratings, prepare_ratings
from embrm.io.errors import InputError
from embrm.io.jsonio import read_json, read_jsonl
from embrm.multi_objective.rating_pairs import rating_pairs

H, A = "\n\nHuman:", "\n\nAssistant:"
ATTRIBUTES = ["helpfulness", "verbosity"]


def _records():
    """Six prompts with three responses each; helpfulness = response number, verbosity
    = its length in words."""
    out = []
    for p in range(6):
        for r in range(3):
            words = " ".join(["word"] * (r + 1))
            out.append(
                {
                    "prompt": f"question {p}",
                    "response": f"answer {r}: {words}",
                    "helpfulness": r,
                    "verbosity": r + 2,
                }
            )
    return out


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _cfg(source, **kw):
    return {
        "source": str(source),
        "data_dir": None,
        "train_split": "train",
        "test_split": "test",
        "test_fraction": 0.34,
        "seed": 0,
        "max_responses": None,
        "attributes": ATTRIBUTES,
        "preference": None,
        **kw,
    }


def _prepare(tmp_path, cfg):
    out_r = {s: tmp_path / f"{s}_ratings.jsonl" for s in ("train", "test")}
    out_a = {s: tmp_path / f"{s}_attributes.npy" for s in ("train", "test")}
    summary = prepare_ratings(
        cfg=cfg, out_ratings=out_r, out_attributes=out_a, report=tmp_path / "report.json"
    )
    return summary, out_r, out_a


def test_a_local_file_splits_by_prompt_and_keeps_every_rating(tmp_path):
    source = _write(tmp_path / "r.jsonl", _records())
    summary, out_r, out_a = _prepare(tmp_path, _cfg(source))
    train, test = read_jsonl(out_r["train"]), read_jsonl(out_r["test"])
    # 34 % of 18 responses: 6 or more, in whole prompts of 3 -> 2 prompts in test
    assert (len(train), len(test)) == (12, 6)
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    assert {r["prompt"] for r in train + test} == {f"{H} question {p}{A}" for p in range(6)}
    assert train[0]["responses"] == ["", " answer 0: word"]
    values = np.load(out_a["train"])
    assert values.shape == (12, 2) and values.dtype == np.float32
    assert values.tolist() == [[r["ratings"][a] for a in ATTRIBUTES] for r in train]
    assert values[:3].tolist() == [[0, 2], [1, 3], [2, 4]]
    report = read_json(tmp_path / "report.json")
    assert report == summary and report["records"] == 18
    assert report["splits"]["test"] == {
        "responses": 6,
        "prompts": 2,
        "mean": {"helpfulness": 1.0, "verbosity": 3.0},
        "std": {
            "helpfulness": pytest.approx(np.sqrt(2 / 3)),
            "verbosity": pytest.approx(np.sqrt(2 / 3)),
        },
    }


def test_a_parquet_file_and_the_sources_own_splits_read_the_same_rows(tmp_path):
    records = [
        {**r, "split": "test" if r["prompt"] == "question 5" else "train"} for r in _records()
    ]
    pd.DataFrame(records).to_parquet(tmp_path / "r.parquet")
    _write(tmp_path / "r.jsonl", records)
    for name in ("r.parquet", "r.jsonl"):
        out = tmp_path / name.replace(".", "_")
        out.mkdir()
        _, out_r, out_a = _prepare(out, _cfg(tmp_path / name, test_fraction=None))
        test = read_jsonl(out_r["test"])
        assert [r["prompt"] for r in test] == [f"{H} question 5{A}"] * 3
        assert np.load(out_a["test"]).tolist() == [[0, 2], [1, 3], [2, 4]]
        assert len(read_jsonl(out_r["train"])) == 15


def test_pairs_from_read_ratings_carry_the_rating_gap_as_margin(tmp_path):
    _, out_r, out_a = _prepare(tmp_path, _cfg(_write(tmp_path / "r.jsonl", _records())))
    rows = read_jsonl(out_r["train"])
    group = np.unique([r["prompt"] for r in rows], return_inverse=True)[1]
    helpful = np.load(out_a["train"])[:, 0]
    pairs, margin, counts = rating_pairs(helpful, group, recipe="all_pairs", seed=0)
    # 4 prompts x C(3, 2) pairs; ratings 0, 1, 2 give gaps 1, 2, 1
    assert counts == {"prompts": 4, "ties_dropped": 0, "pairs": 12}
    assert margin.tolist() == [1, 2, 1] * 4
    assert (helpful[pairs.first] > helpful[pairs.second]).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"helpfulness": None}, "record 4: no rating field 'helpfulness'"),
        ({"verbosity": "long"}, "record 4: field 'verbosity' must be a number, found 'long'"),
        ({"verbosity": "nan"}, "record 4: field 'verbosity' must be a finite number"),
        ({"helpfulness": True}, "record 4: field 'helpfulness' must be a number, found True"),
        ({"helpfulness": [3]}, "field 'helpfulness' must be a number, found \\[3\\]"),
        ({"response": None}, "record 4: no field 'response'"),
    ],
)
def test_a_bad_record_names_the_file_the_record_and_the_field(change, message):
    records = _records()
    records[4] = {k: v for k, v in {**records[4], **change}.items() if v is not None}
    with pytest.raises(InputError, match=f"r.jsonl: {message}" if "record" in message else message):
        parse_ratings(
            records, source="r.jsonl", attributes=ATTRIBUTES, max_responses=None, counts=Counter()
        )


def test_a_numeric_string_reads_as_its_number_and_bad_settings_are_refused(tmp_path):
    records = _records()
    records[0]["helpfulness"] = "3.5"
    rows = parse_ratings(
        records, source="r.jsonl", attributes=ATTRIBUTES, max_responses=4, counts=Counter()
    )
    assert len(rows) == 4 and rows[0]["ratings"] == {"helpfulness": 3.5, "verbosity": 2.0}
    with pytest.raises(InputError, match="nowhere.jsonl: ratings file not found .*data.ratings"):
        _prepare(tmp_path, _cfg(tmp_path / "nowhere.jsonl"))
    source = _write(tmp_path / "r.jsonl", _records())
    with pytest.raises(InputError, match="data.ratings.attributes must name distinct"):
        _prepare(tmp_path, _cfg(source, attributes=["verbosity", "verbosity"]))


def test_the_preference_is_the_named_field_or_the_mean_of_the_attributes():
    records = [{**r, "overall": 10 - i} for i, r in enumerate(_records())]
    read = dict(source="r.jsonl", attributes=ATTRIBUTES, max_responses=3, counts=Counter())
    assert [r["preference"] for r in parse_ratings(records, **read)] == [1.0, 2.0, 3.0]
    rows = parse_ratings(records, **read, preference="overall")
    assert [r["preference"] for r in rows] == [10.0, 9.0, 8.0]
    del records[1]["overall"]
    with pytest.raises(InputError, match="record 1: no rating field 'overall' .*preference"):
        parse_ratings(records, **read, preference="overall")
