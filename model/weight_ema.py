"""An exponential moving average (EMA) of the trainable weights, kept beside training.

The weights of the last optimizer step carry the noise of the last batches; diffusion and
flow-matching policies are usually run with an average of the weights along the way (Diffusion
Policy, Chi et al. 2023). The average starts at the weights the run starts from, so in a fine-tune
it keeps decay ** steps of the parent: a running "mean with the parent" that moves on.

    ema = WeightEMA(trainable_parameters(model), decay=0.999)
    ...optimizer.step(); ema.update()
    with ema.swapped_in() as trained:  # the model holds the averaged weights inside
        save_checkpoint(...)  # and `trained` in the training state, for resuming
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def check_decay(decay: float) -> str | None:
    """The problem with an EMA decay, or None: 0 turns the average off, 1 would never move."""
    if not 0.0 <= decay < 1.0:
        return f"ema_decay must be in [0, 1) (0: no average), got {decay}"
    return None


class WeightEMA:
    def __init__(self, params: list[torch.nn.Parameter], decay: float) -> None:
        problem = check_decay(decay)
        if problem or decay == 0.0:
            raise ValueError(problem or "a WeightEMA needs a decay > 0")
        self.decay = decay
        self.params = params
        self.average = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self) -> None:
        """average += (1 - decay) * (weights - average), after each optimizer step."""
        torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1.0 - self.decay)

    @contextmanager
    def swapped_in(self) -> Iterator[list[torch.Tensor]]:
        """The averaged weights in the model inside; the trained ones back after, exactly. Yields a
        copy of the trained weights (what a resumed run continues from)."""
        trained = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, a in zip(self.params, self.average):
                p.copy_(a)
        try:
            yield trained
        finally:
            with torch.no_grad():
                for p, t in zip(self.params, trained):
                    p.copy_(t)

    @torch.no_grad()
    def resume(self, trained: list[torch.Tensor]) -> None:
        """Resuming: the model was loaded from a checkpoint, i.e. the average; put the trained weights back."""
        if len(trained) != len(self.params) or any(t.shape != p.shape for t, p in zip(trained, self.params)):
            raise ValueError("the saved trained weights do not match this model's trainable parameters")
        self.average = [p.detach().clone() for p in self.params]
        for p, t in zip(self.params, trained):
            p.copy_(t)
