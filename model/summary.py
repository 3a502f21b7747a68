"""Parameter counts of a preset, built on the meta device (no memory, no weights).

    python -m model.summary --preset a1-3b [--json]
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn

from model.config import PRESETS, preset
from model.internvla import InternVLA

FORESIGHT_PROJECTIONS = ("cosmos_in_proj", "downsample_conv", "upsample_conv", "cosmos_out_layer_norm", "cosmos_out_proj")
ACTION_PROJECTIONS = ("state_proj", "action_in_proj", "action_out_proj", "action_time_mlp_in", "action_time_mlp_out")


def count(module: nn.Module | None) -> int:
    """Parameters of a module, tied ones once."""
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def parameter_counts(model: InternVLA) -> dict[str, int | None]:
    mot = model.qwen3_vl_with_expert
    counts: dict[str, int | None] = {
        "und_expert": count(mot.und_expert),
        "und_vision": count(mot.und_expert.model.visual),
        "und_language": count(mot.und_expert.model.language_model),
        "gen_expert": count(mot.gen_expert),
        "act_expert": count(mot.act_expert),
        "foresight_projections": sum(count(getattr(model, name)) for name in FORESIGHT_PROJECTIONS),
        "action_projections": sum(count(getattr(model, name)) for name in ACTION_PROJECTIONS),
        "tokenizer": None if model.cosmos is None else count(model.cosmos),  # None: Cosmos loads from its own files
    }
    counts["total"] = count(model)
    return counts


def build_on_meta(name: str) -> InternVLA:
    with torch.device("meta"):
        return InternVLA(preset(name))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    counts = parameter_counts(build_on_meta(args.preset))
    if args.json:
        print(json.dumps({"preset": args.preset, **counts}))
        return
    print(f"preset {args.preset}")
    for name, n in counts.items():
        shown = "not built (Cosmos weights load from encoder.jit / decoder.jit)" if n is None else f"{n:>15,}  ({n / 1e6:,.1f} M)"
        print(f"  {name:<22} {shown}")


if __name__ == "__main__":
    main()
