"""The policy server's wire agreement, one home for both ends: model/serve.py (the server) and
robot_io/wire/remote_policy.py (the console's client). openpi's websocket protocol (msgpack maps,
robot_io/wire/codec.py) with the keys below; the module docstring of model/serve.py describes the
messages in full.
"""

from __future__ import annotations

PROTOCOL = "openpi-websocket"

# Authentication: openpi-client sends "Authorization: Api-Key <key>".
AUTH_HEADER = "Authorization"
AUTH_SCHEME = "Api-Key"
TOKEN_ENV = "FORESIGHT_POLICY_TOKEN"  # the token, when a command line gives none (server and console)

# Request keys.
STATE_KEY = "observation/state"  # the state vector, in the server's state-key order
STATE_ARRAY_KEYS = ("state", STATE_KEY)  # the names a client may send the state vector under
IMAGES_KEY = "images"  # camera -> uint8 image
PROMPT_KEY = "prompt"  # the instruction
RESET_KEY = "reset"  # forget the episode's frame history
OBSERVE_ONLY_KEY = "observe_only"  # keep the frame for history, run no model

# Reply keys.
OBSERVED_KEY = "observed"  # the answer to an observe_only request
SERVER_TIMING_KEY = "server_timing"

# Metadata keys that name the server's robot layout.
LAYOUT_KEYS = ("cameras", "state_keys", "action_keys")
