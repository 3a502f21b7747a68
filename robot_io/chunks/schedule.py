"""Which chunk step runs at which tick: one pure object, shared by the console's session (behind
its lock) and the sim rollouts of model.evaluate and runtime.collect_corrections, so both run a
policy's chunks the same way by construction.

A chunk inferred from the observation of tick t holds the commands for ticks t+1, t+2, ... (the
command of tick t went out while the policy was thinking; robot_io.policy.commands_after_observation
drops a policy's own step for tick t). A pushed chunk takes over at the first `pop` for one of its
ticks: it is blended with what remains of the running plan (robot_io/chunks/blending.py), steps
whose tick has passed are skipped (a late chunk never replays the past), and the switch is kept
for `take_switch` so the session can measure the seam.

When to ask for the next chunk (real-time chunking, Black et al. 2025): a chunk inferred from
tick t takes over at the first tick after it arrives, d ticks later (d = 1: the inference took
less than a tick). The schedule measures d at every take-over and, with `start_early`, asks for
the next chunk d - 1 steps before the newest one has run `execute_horizon` steps, taking the
largest d of the last few chunks, so the new chunk is ready as the running one reaches its
horizon; the steps of the new chunk for the ticks in between are skipped (a late chunk never
replays the past). With d = 1 that is the plain rule: after `execute_horizon` steps, or when the
chunk runs out. `wants_chunk(tick)` says so once, after that tick's `pop`, and then counts one
inference in flight until `push` answers it or `cancel_request` drops it: the caller infers on
that tick's observation.

Guided chunks (`guided`, for policies that take them, robot_io.policy.Policy.guided_chunks):
`guide(tick)` gives the running plan from the observation's tick on and how many of its steps
are committed (they run before the new chunk can take over), so the policy can generate a chunk
that keeps them and continues from them instead of jumping.

No threads, no locks, no clocks: ticks are the only time it knows.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

from robot_io.chunks.blending import BlendConfig, ChunkSwitch, Plan, blend_into_plan


@dataclass(frozen=True)
class ChunkConfig:
    """How a policy's chunks run: the console's session, model.evaluate, runtime.collect_corrections."""

    # Chunk steps run before the next inference is asked for. With each chunk run from its step
    # for the next tick, the shipped sim model picked more held-out scenes replanning every 6
    # steps than every 8 or 4 (its MODEL_CARD.md).
    execute_horizon: int = 6
    # How a new chunk takes over from the running one (robot_io/chunks/blending.py).
    blend: BlendConfig = field(default_factory=BlendConfig)
    # Ask for the next chunk early by the inference delay measured over the last chunks, so it is
    # ready when the running one reaches its execute horizon (real-time chunking). Off: a chunk runs
    # its horizon plus the delay; the shipped sim model picked more scenes that way (its MODEL_CARD.md).
    start_early: bool = False
    # Give a policy that takes them (Policy.guided_chunks) the running plan and its committed steps,
    # so the new chunk keeps them (real-time chunking's guided mode).
    guided: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.execute_horizon, bool) or not isinstance(self.execute_horizon, int) or self.execute_horizon < 1:
            raise ValueError(f"execute_horizon must be a whole number of chunk steps >= 1, got {self.execute_horizon!r}")
        if not isinstance(self.blend, BlendConfig):
            raise TypeError(f"blend must be a BlendConfig, got {type(self.blend).__name__}")


DELAY_WINDOW = 5  # take-overs whose delay the next early start is planned on


@dataclass(frozen=True)
class Guide:
    """What a guided inference on tick t's observation is given."""

    plan: np.ndarray  # (n, action_dim): the running plan's commands for ticks t, t+1, ...
    committed: int  # plan[:committed] run whatever the new chunk says: it cannot take over sooner


@dataclass(frozen=True)
class Chunk:
    chunk_id: int
    obs_tick: int  # the tick whose observation produced it
    actions: np.ndarray  # (steps, action_dim): the commands for ticks obs_tick + 1, obs_tick + 2, ...
    latency_ms: float

    def step_for(self, tick: int) -> int:
        return tick - self.obs_tick - 1


class ChunkSchedule:
    def __init__(self, config: ChunkConfig | None = None) -> None:
        self.config = config if config is not None else ChunkConfig()
        self._chunk: Chunk | None = None  # the newest chunk pushed
        self._pending = False  # `_chunk` has not taken over yet (its first pop is to come)
        self._plan: Plan | None = None  # what pop proposes: the running chunk after blending
        self._switch: ChunkSwitch | None = None  # the latest take-over, until take_switch()
        self._requested = False  # an inference asked for by wants_chunk is in flight
        self._next_id = 0
        self._executed = 0  # steps of the newest chunk popped since it took over
        # ticks from a chunk's observation to its take-over, for the last few chunks
        self._delays: collections.deque[int] = collections.deque(maxlen=DELAY_WINDOW)

    def push(self, actions: np.ndarray, obs_tick: int, latency_ms: float = 0.0) -> Chunk:
        """A new chunk, (steps, action_dim), for the ticks after `obs_tick`; it answers the request in flight."""
        self._next_id += 1
        frozen = np.array(actions, dtype=np.float32)  # our own copy
        frozen.flags.writeable = False  # snapshots share it with every viewer
        self._chunk = Chunk(self._next_id, obs_tick, frozen, latency_ms)
        self._pending = True
        self._requested = False
        self._executed = 0
        return self._chunk

    def clear(self) -> None:
        """Drop every plan and the request in flight (a mode change: what was planned is stale)."""
        self._chunk = None
        self._pending = False
        self._plan = None
        self._switch = None
        self._requested = False
        self._executed = 0

    def pop(self, tick: int) -> tuple[np.ndarray | None, Chunk | None]:
        """The command (action_dim,) for `tick` from the current plan, or None when it has none (hold),
        and the newest chunk."""
        chunk = self._chunk
        if chunk is None:
            return None, None
        step = chunk.step_for(tick)
        # Until its first tick comes, a pushed chunk leaves the running plan in charge.
        if self._pending and step >= 0:
            self._take_over(chunk, tick, step)
        action = self._plan.action_for(tick) if self._plan is not None else None
        if action is None:
            return None, chunk
        if not self._pending:
            self._executed += 1  # counts toward the newest chunk's execute horizon only
        return action, chunk

    def wants_chunk(self, tick: int) -> bool:
        """After `pop(tick)`: True when the next chunk should be inferred from this tick's
        observation (once: the request then counts as in flight)."""
        if self._requested:
            return False
        if self._chunk is not None:
            used_up = self._chunk.step_for(tick) + 1 >= len(self._chunk.actions)
            early = self.expected_delay() - 1 if self.config.start_early else 0
            if not used_up and self._executed + early < self.config.execute_horizon:
                return False
        self._requested = True
        return True

    def cancel_request(self) -> None:
        """The inference in flight will not answer (it failed, or its result was stale)."""
        self._requested = False

    def expected_delay(self) -> int:
        """Ticks from an observation to its chunk's take-over that the next request plans for: the
        largest of the last few measured, 1 before any."""
        return max(self._delays, default=1)

    def last_delay(self) -> int | None:
        """The delay of the latest take-over, in ticks; None before any."""
        return self._delays[-1] if self._delays else None

    def guide(self, tick: int) -> Guide | None:
        """For a guided inference on `tick`'s observation (after `pop(tick)`): the running plan
        from `tick` on and its committed steps; None when not guided or nothing runs."""
        if not self.config.guided or self._plan is None:
            return None
        plan, _ = self._plan.remainder_from(tick)
        if self._plan.start_tick > tick or len(plan) == 0:
            return None
        return Guide(plan, min(self.expected_delay(), len(plan)))

    def take_switch(self) -> ChunkSwitch | None:
        """The latest chunk take-over not yet taken (for seam measurement), or None."""
        switch, self._switch = self._switch, None
        return switch

    def remaining(self, tick: int) -> int:
        """Steps of the newest chunk left for ticks after `tick`."""
        if self._chunk is None:
            return 0
        return max(0, len(self._chunk.actions) - self._chunk.step_for(tick) - 1)

    def _take_over(self, chunk: Chunk, tick: int, step: int) -> None:
        """Blend the pushed chunk's steps from `tick` on into the plan."""
        self._pending = False
        self._delays.append(tick - chunk.obs_tick)
        new = chunk.actions[step:]  # (n, action_dim): the steps whose tick has not passed
        if len(new) == 0:  # every step is in the past: nothing to run, hold as for a used-up chunk
            self._plan = None
            return
        self._plan, overlap = blend_into_plan(self._plan, tick, new, self.config.blend)
        self._switch = ChunkSwitch(tick, chunk.chunk_id, new[0].copy(), self._plan.actions[0].copy(), overlap)
