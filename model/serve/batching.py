"""The model's part of a batch: every client's request of one batch run in one call, each getting
its output or its own error (run on the server's worker thread)."""

from __future__ import annotations

from collections.abc import Sequence

from model.internvla import InternVLA
from model.policy import InternVLAPolicy, Prepared, infer_batch
from model.serve.requests import BadRequest, Request
from robot_io.policy import PolicyOutput
from robot_io.wire.protocol import OBSERVED_KEY



def run_jobs(model: InternVLA, items: Sequence[tuple[InternVLAPolicy, Request]]) -> list[PolicyOutput | str | Exception]:
    """The worker thread's whole job for one batch; never raises (each item gets a result or its error)."""
    results: list[PolicyOutput | str | Exception | None] = [None] * len(items)
    prepared: list[tuple[int, InternVLAPolicy, Prepared]] = []
    for i, (policy, request) in enumerate(items):
        try:
            if request.reset:
                policy.reset()
            if request.observe_only:
                policy.observe(request.observation)
                results[i] = OBSERVED_KEY
            else:
                prepared.append((i, policy, policy.prepare(request.observation, request.prompt)))
        except ValueError as err:  # the policy's own input checks (NaN state, bad frame, empty text)
            results[i] = BadRequest(str(err))
        except Exception as err:  # noqa: BLE001 - one request's fault is its own client's error
            results[i] = err
    if prepared:
        try:
            outputs = infer_batch(model, [(policy, p) for _, policy, p in prepared])
        except Exception as err:  # noqa: BLE001 - the batch's clients get the error, the server goes on
            outputs = [err] * len(prepared)
        for (i, _, _), output in zip(prepared, outputs):
            results[i] = output
    return results  # type: ignore[return-value]
