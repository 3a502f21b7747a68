"""Parameter counts on the meta device: a1-3b must have the released model's sizes."""

import json

from model.summary import build_on_meta, main, parameter_counts


def test_a1_3b_counts_match_the_released_model():
    counts = parameter_counts(build_on_meta("a1-3b"))
    assert 2.10e9 < counts["und_expert"] < 2.15e9  # Qwen3-VL-2B, tied embeddings counted once
    assert 0.43e9 < counts["gen_expert"] < 0.45e9
    assert counts["act_expert"] == counts["gen_expert"]
    assert 3.1e9 < counts["total"] < 3.2e9  # + Cosmos CI8x8's own weights, loaded from its files
    assert counts["tokenizer"] is None


def test_cli_prints_json(capsys):
    main(["--preset", "tiny", "--json"])
    counts = json.loads(capsys.readouterr().out)
    assert counts["preset"] == "tiny"
    parts = ("und_expert", "gen_expert", "act_expert", "foresight_projections", "action_projections", "tokenizer")
    assert counts["total"] == sum(counts[p] for p in parts)
