"""bench.bench_full_size's whole path (build, infer, save, strict load, identical infer) at toy a1-3b shapes:
the Qwen3-VL understanding expert and a Cosmos-interface TorchScript tokenizer, in bf16 on the CPU."""

import dataclasses

from bench.bench_full_size import run
from model.config import ForesightConfig
from tests.model.test_qwen3_vl import qwen_small_config


def test_full_size_bench_runs_at_toy_shapes():
    config = dataclasses.replace(qwen_small_config(), foresight=ForesightConfig(tokenizer="cosmos", image_size=32, tokens_per_side=2))
    lines = []
    result = run(config, threads=1, log=lines.append)
    assert result["finite"] and result["identical"]
    assert result["shapes"] == {"actions": (6, 7), "foresight_pictures": (3, 32, 32, 3), "foresight_latents": (3, 16, 4, 4)}
    assert set(result["timings_ms"]) == {"prefix", "generation_decode", "denoise", "total"}
    assert result["checkpoint_gb"] > 0 and result["peak_rss_gib"] > 0
    assert any("identical: True" in line for line in lines)
