"""Runs the README's pandas snippet in a results directory and checks what
it loaded: the answers of results.json, and scores.csv against scores
recomputed here from answers.csv and items.csv (mean of the valid answers
per key, reverse-keyed items recoded; MRAT: minus the mean of all valid
value answers, only when every value has one). Writes the mean MRAT score
by persona and scale for check.R to compare with.

usage: check.py SNIPPET EXPECTED_MRAT_CSV (run inside the results directory)
"""
import json
import sys

import numpy as np
import pandas as pd

snippet, expected_out = sys.argv[1], sys.argv[2]
ns = {}
exec(compile(open(snippet).read(), "README pandas snippet", "exec"), ns)
answers, pivot = ns["answers"], ns["scores"]

res = json.load(open("results.json"))
counts = res["answers"]
assert len(answers) == counts["expected"], f"answers: got {len(answers)} rows, want {counts['expected']}"
assert int(answers["valid"].sum()) == counts["valid"], f"valid: got {answers['valid'].sum()}, want {counts['valid']}"
assert answers.loc[~answers["valid"], "answer"].isna().all(), "an invalid answer has a value"

items = pd.read_csv("items.csv")
scores = pd.read_csv("scores.csv")
codes = ["SD", "ST", "HE", "AC", "PO", "SE", "CO", "TR", "BE", "UN"]
q = answers[(answers["round"] == 0) & answers["valid"]].merge(
    items[["instrument", "item", "key", "reverse", "scale_min", "scale_max"]], on=["instrument", "item"])
q["x"] = np.where(q["reverse"], q["scale_min"] + q["scale_max"] - q["answer"], q["answer"])
raw = q.groupby(["model", "agent", "instrument", "key"])["x"].mean().rename("want_raw").reset_index()
n = q.groupby(["model", "agent", "instrument", "key"]).size().rename("want_answered").reset_index()
m = scores.merge(raw, left_on=["model", "agent", "instrument", "scale"], right_on=["model", "agent", "instrument", "key"], how="left")
m = m.merge(n, on=["model", "agent", "instrument", "key"], how="left")
m["want_answered"] = m["want_answered"].fillna(0).astype(int)
assert (m["answered"] == m["want_answered"]).all(), "answered differs from the valid answers counted in answers.csv"
bad = ~np.isclose(m["raw"], m["want_raw"], atol=5e-5, equal_nan=True)
assert not bad.any(), f"raw differs from answers.csv's means:\n{m[bad].head()}"

value_instruments = [i for i, g in items.groupby("instrument") if set(g["key"]) <= set(codes)]
v = q[q["instrument"].isin(value_instruments)]
mean = v.groupby(["model", "agent", "instrument"])["x"].mean().rename("mean").reset_index()
full = v.groupby(["model", "agent", "instrument"])["key"].nunique().rename("values").reset_index()
m = m.merge(mean, on=["model", "agent", "instrument"], how="left").merge(full, on=["model", "agent", "instrument"], how="left")
vm = m[m["instrument"].isin(value_instruments)]
want = np.where(vm["values"] == 10, vm["want_raw"] - vm["mean"], np.nan)
bad = ~np.isclose(vm["mrat"], want, atol=5e-5, equal_nan=True)
assert not bad.any(), f"mrat differs from answers.csv's centred means:\n{vm[bad].head()}"
assert len(vm) > 0 and vm["mrat"].notna().any(), "no MRAT score to check"

assert list(pivot.columns) == sorted(set(scores["scale"])), f"pivot columns {list(pivot.columns)}"
want_pivot = scores.groupby(["persona", "scale"])["mrat"].mean()
want_pivot.rename("mrat").reset_index().to_csv(expected_out, index=False)

if "played" in answers.columns:
    games = pd.read_csv("games.csv")
    g = answers[answers["round"] > 0].merge(games[["model", "round", "agent", "played"]], on=["model", "round", "agent"],
                                             suffixes=("", "_games"))
    assert len(g) == (answers["round"] > 0).sum(), "a game row of answers.csv is not in games.csv"
    assert (g["played"] == g["played_games"]).all(), "answers.csv's played differs from games.csv's"
    assert answers.loc[answers["round"] == 0, "played"].isna().all(), "a questionnaire row has played set"
    print(f"pandas: {len(answers)} answers, {(g['played'] == False).sum()} game answers of agents who did not play, "
          f"{len(scores)} scores checked")
else:
    print(f"pandas: {len(answers)} answers, {len(scores)} scores checked")
