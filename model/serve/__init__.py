"""Policy server: a checkpoint's InternVLA-A1 behind openpi's websocket protocol.

    python -m model.serve --checkpoint DIR --port P [--host 127.0.0.1] [--token T] [--max-batch 8] ...

Wire protocol, as Physical-Intelligence/openpi's `src/openpi/serving/websocket_policy_server.py` and
`packages/openpi-client/src/openpi_client/{websocket_client_policy,msgpack_numpy}.py`, so the public
`openpi_client.websocket_client_policy.WebsocketClientPolicy(host, port, api_key=...)` works unchanged:

- Connect to ws://HOST:PORT (no compression). When the server has a token, the client must send the
  header `Authorization: Api-Key <token>` (openpi-client's `api_key`); otherwise the handshake is
  refused with HTTP 401. `GET /healthz` answers 200 "OK" without a token, as openpi's server does.
- Right after the handshake the server sends one binary frame: the packed metadata dict (below).
- Then, per request: one binary frame from the client, a packed observation dict; one binary frame
  back, a packed dict with
      "actions"           float32 (chunk, action_dim), absolute, in metadata["action_keys"] order
      "server_timing"     {"infer_ms": model time of the batch this request ran in,
                           "queue_ms": time spent waiting for the batch,
                           "prev_total_ms": the previous request's round trip on this connection
                                            (from the 2nd reply on, as openpi)}
  and our extra keys: "foresight" {camera: uint8 (H, W, 3) predicted frame t+15},
  "foresight_latents" {camera: float32 (C, h, w)}, "timings_ms" {stage: ms} (the policy's own
  per-stage clock: prefix, generation_decode, denoise, total) and "batch_size".
- Errors, as openpi: a text frame with the message, then the connection is closed: code 1008
  (policy violation) for a bad request (malformed msgpack, a refused dtype, missing keys, ...), 1011
  for a fault of the server (the traceback is in the text frame). openpi-client raises
  RuntimeError("Error in inference server: ...") on such a text frame. A message over
  max_message_bytes is cut off by websockets itself with close code 1009 and a reason naming both
  sizes. Other clients are never affected.
- Messages are msgpack only (see robot_io.wire.codec): no pickle anywhere.

Observation mapping (openpi style -> our robot keys, the checkpoint's layout in train_config.json):
- "prompt": str, the instruction (required for inference).
- state: "state" or "observation/state", a numeric (len(state_keys),) array in metadata["state_keys"]
  order; or, as our robots report it, one scalar per state key ("joint_1.pos": 0.1, ...).
- cameras: "images": {camera: uint8 image}, or the camera key itself at the top level (our robots'
  format); camera names are metadata["cameras"]. Images are (H, W, 3) or openpi's (3, H, W), any
  size (letterboxed to the model's input). A missing camera is an absent view, masked out.
- optional "reset": true forgets this connection's frame history first (a new episode);
  optional "observe_only": true only records the frames (for frame t-15, like Policy.observe) and
  answers {"observed": true, "server_timing": {...}} without running the model.
- Other keys are ignored. Each connection has its own policy state (frame history, noise).

Batching: requests from different connections that arrive within batch_window_ms of each other (up
to max_batch) run as one model call; requests that arrive while a batch runs form the next batch.
The window is cut short once every connected client has a request in the batch (a lone client
never waits for it).
The model runs in one worker thread, so the event loop keeps answering pings, handshakes and
other clients while it works.

Metadata: {"protocol", "policy", "model", "robot_type", "cameras", "state_keys", "action_keys",
"chunk_size", "action_dim", "image_size", "foresight_horizon", "max_batch", "max_message_bytes",
"extra_keys"}. "foresight_horizon" H: the model reads frame t-H (so clients send every tick's frames
as observe_only requests) and predicts frame t+H.

Parts: requests.py (a message -> Request), batching.py (a batch -> one model call), server.py
(websockets, auth, the batcher, serve_in_thread), cli.py (the command line); the wire agreement
both ends share is robot_io/wire/protocol.py.
"""

from model.serve.batching import run_jobs
from model.serve.cli import main, parse_args
from model.serve.requests import BadRequest, Request, parse_request
from model.serve.server import PolicyServer, ServeConfig, serve_in_thread

__all__ = ["BadRequest", "PolicyServer", "Request", "ServeConfig", "main", "parse_args", "parse_request", "run_jobs",
           "serve_in_thread"]
