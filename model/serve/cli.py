"""python -m model.serve: the command line of the policy server."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from model.serve.server import (
    DEFAULT_BATCH_WINDOW_MS, DEFAULT_HOST, DEFAULT_MAX_BATCH, DEFAULT_MAX_CLIENTS, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_PORT,
    PolicyServer, ServeConfig,
)
from robot_io.wire.protocol import TOKEN_ENV

logger = logging.getLogger(__name__)


def parse_args(argv: Sequence[str] | None = None) -> ServeConfig:
    p = argparse.ArgumentParser(prog="python -m model.serve", description="Serve a checkpoint over openpi's websocket protocol.")
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint folder (model.safetensors, config.json, stats.json, train_config.json)")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free port)")
    p.add_argument("--token", default=None, help=f"clients must send 'Authorization: Api-Key <token>' (default: ${TOKEN_ENV} if set)")
    p.add_argument("--max-message-mb", type=float, default=DEFAULT_MAX_MESSAGE_BYTES / 2**20, help="largest request accepted, MiB")
    p.add_argument("--batch-window-ms", type=float, default=DEFAULT_BATCH_WINDOW_MS, help="how long a batch waits for more requests")
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="requests per model call at most")
    p.add_argument("--max-clients", type=int, default=DEFAULT_MAX_CLIENTS, help="simultaneous connections at most")
    p.add_argument("--seed", type=int, default=None, help="noise seed of every connection (default random)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tokenizer-folder", type=Path, default=None, help="Cosmos TorchScript files, when not in the checkpoint folder")
    args = p.parse_args(argv)
    try:
        return ServeConfig(
            checkpoint=args.checkpoint,
            host=args.host,
            port=args.port,
            token=args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None,
            max_message_bytes=int(args.max_message_mb * 2**20),
            batch_window_ms=args.batch_window_ms,
            max_batch=args.max_batch,
            max_clients=args.max_clients,
            seed=args.seed,
            device=args.device,
            tokenizer_folder=args.tokenizer_folder,
        )
    except ValueError as err:
        p.error(str(err))
        raise  # unreachable: p.error exits


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    if not _is_loopback(config.host) and config.token is None:
        logger.warning("serving on %s without a token: anyone who can reach this port can drive the policy", config.host)
    server = PolicyServer(config)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
