"""model.attention_probe: per-block attention masses against a brute-force softmax of the real
queries and keys, their uniform baseline counted by hand, the generation mask, and the command."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model import attention_probe
from model.attention_probe import ACTION, GENERATION, AttentionMass
from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.sim_robot import SimRobot
from tests.model.helpers import CAMERAS, random_inputs, random_noise, small_config, small_model, write_served_checkpoint

TEXT_LEN = 5
# small_config's sequence, counted by hand: per camera 1 + 2x2 image tokens + 1, 8 text tokens;
# per camera 2 frames x 2x2 generation tokens; the state; a chunk of 6 actions.
BLOCKS = {"image head": (0, 6), "image wrist": (6, 12), "image side": (12, 18), "text": (18, 26),
          "gen head": (26, 34), "gen wrist": (34, 42), "gen side": (42, 50), "state": (50, 51), "actions": (51, 57)}
GEN_END, SEQUENCE = 50, 57
GEN_BLOCKS = [i for i, name in enumerate(BLOCKS) if name.startswith("gen ")]


def probe(model):
    """One inference on fixed random inputs, recorded."""
    config = model.config
    recorder = AttentionMass(config, CAMERAS)
    with recorder.attached(model):
        model.sample(random_inputs(config, text_len=TEXT_LEN), random_noise(config))
    recorder.end_inference()
    return recorder


def brute_force_masses(q, k, bias, blocks):
    """float64 softmax of every head and query by the definition, summed per block, averaged over heads and queries."""
    q, k, bias = (t[0].double().numpy() for t in (q, k, bias))  # batch of one
    group = q.shape[0] // k.shape[0]
    masses = np.zeros(len(blocks))
    for h in range(q.shape[0]):
        for i in range(q.shape[1]):
            scores = np.array([q[h, i] @ k[h // group, j] / np.sqrt(q.shape[-1]) for j in range(k.shape[1])]) + bias[0, i]
            weights = np.exp(scores - scores.max())
            weights /= weights.sum()
            masses += [weights[start:stop].sum() for start, stop in blocks]
    return masses / (q.shape[0] * q.shape[1])


def test_masses_match_a_brute_force_softmax_and_sum_to_one(monkeypatch):
    model = small_model()
    calls = []  # (q, k, bias) of every fused attention
    fused = F.scaled_dot_product_attention

    def capture(q, k, v, attn_mask, enable_gqa):
        calls.append((q, k, attn_mask))
        return fused(q, k, v, attn_mask=attn_mask, enable_gqa=enable_gqa)

    monkeypatch.setattr(F, "scaled_dot_product_attention", capture)
    recorder = probe(model)
    layers, steps = model.config.num_layers, model.config.flow.denoise_steps

    gen_calls = [c for c in calls if c[1].shape[2] == GEN_END]
    action_calls = [c for c in calls if c[1].shape[2] == SEQUENCE]
    assert (len(gen_calls), len(action_calls)) == (layers, steps * layers)
    gen_blocks = [span for name, span in BLOCKS.items() if name not in ("state", "actions")]
    expected_gen = np.array([brute_force_masses(*c, gen_blocks) for c in gen_calls]).reshape(1, layers, -1)
    expected_action = np.array([brute_force_masses(*c, list(BLOCKS.values())) for c in action_calls]).reshape(steps, layers, -1)

    (gen_mass, _), = recorder.inferences[GENERATION]
    (action_mass, _), = recorder.inferences[ACTION]
    np.testing.assert_allclose(gen_mass, expected_gen, atol=1e-6)
    np.testing.assert_allclose(action_mass, expected_action, atol=1e-6)
    for mass in (gen_mass, action_mass):
        np.testing.assert_allclose(mass.sum(axis=-1), 1.0, atol=1e-6)

    summary = recorder.summary()
    assert summary[ACTION]["blocks"] == list(BLOCKS) and summary[ACTION]["passes_per_inference"] == steps
    for layer, figures in enumerate(summary[ACTION]["layers"]):
        blocks = figures["blocks"]
        assert sum(m["mass"] for m in blocks.values()) == pytest.approx(1.0, abs=1e-6)
        assert [m["mass"] for m in blocks.values()] == pytest.approx(expected_action[:, layer].mean(axis=0), abs=1e-6)
        assert figures["generation_total"]["mass"] == pytest.approx(expected_action[:, layer, GEN_BLOCKS].mean(axis=0).sum(), abs=1e-6)


def test_uniform_share_counts_the_keys_each_query_may_read():
    summary = probe(small_model()).summary()
    images, gen = 3 * 6, 3 * 8
    state_reads = images + TEXT_LEN + gen + 1  # padded text unread, the actions after the state
    action_reads = state_reads + 6
    for layer in range(small_config().num_layers):
        action = summary[ACTION]["layers"][layer]["blocks"]
        assert action["gen head"]["uniform"] == pytest.approx((8 / state_reads + 6 * 8 / action_reads) / 7)
        assert action["text"]["uniform"] == pytest.approx((TEXT_LEN / state_reads + 6 * TEXT_LEN / action_reads) / 7)
        assert action["actions"]["uniform"] == pytest.approx(6 * 6 / action_reads / 7)
        assert summary[ACTION]["layers"][layer]["generation_total"]["uniform"] == pytest.approx(3 * action["gen head"]["uniform"])
        generation = summary[GENERATION]["layers"][layer]["blocks"]
        assert set(generation) == set(BLOCKS) - {"state", "actions"}
        assert generation["gen side"]["uniform"] == pytest.approx(8 / (images + TEXT_LEN + gen))


def test_masked_generation_gets_no_mass_from_the_action_expert():
    model = small_model()
    reading = probe(model).summary()
    model.config.action_reads_generation = False
    masked = probe(model).summary()
    for layer, figures in enumerate(masked[ACTION]["layers"]):
        blocks = figures["blocks"]
        for name in ("gen head", "gen wrist", "gen side"):
            assert blocks[name]["mass"] == 0 and blocks[name]["uniform"] == 0
            assert reading[ACTION]["layers"][layer]["blocks"][name]["mass"] > 0
        assert figures["generation_total"] == {"mass": 0, "std": 0, "uniform": 0}
        assert sum(m["mass"] for m in blocks.values()) == pytest.approx(1.0, abs=1e-6)
    assert masked[GENERATION] == reading[GENERATION]  # the generation expert reads as before


def test_the_command_probes_closed_loop_episodes_and_writes_the_masses(tmp_path, capsys):
    checkpoint = tmp_path / "ckpt"
    write_served_checkpoint(checkpoint, SimRobot(ConveyorSimConfig()))
    out = tmp_path / "probe.json"
    argv = ["--checkpoint", str(checkpoint), "--episodes", "1", "--seed", "4", "--mask-generation", "--json", str(out)]
    assert attention_probe.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["seeds"] == [4, 4] and report["action_reads_generation"] is False
    action = report["queries"][ACTION]
    assert action["inferences"] > 1 and action["passes_per_inference"] == small_config().flow.denoise_steps
    assert report["queries"][GENERATION]["inferences"] == action["inferences"]
    for figures in action["layers"]:
        assert sum(m["mass"] for m in figures["blocks"].values()) == pytest.approx(1.0, abs=1e-5)
        assert figures["generation_total"]["mass"] == 0
    assert len(action["mass_by_pass"]) == small_config().flow.denoise_steps
    printed = capsys.readouterr().out
    assert "seed 4:" in printed and "action expert blind to the generation tokens" in printed
    assert "action expert's queries (state + action tokens)" in printed and "mass/uniform" in printed


def test_training_seeds_and_no_episodes_are_refused(capsys):
    with pytest.raises(SystemExit):
        attention_probe.main(["--episodes", "1", "--seed", "100000"])
    assert "seeds from 100000 up are the training demonstrations'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        attention_probe.main(["--episodes", "0"])
    assert "--episodes must be >= 1" in capsys.readouterr().err
