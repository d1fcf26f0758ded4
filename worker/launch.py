"""How `memlab worker` starts Celery: the command line of one node, and one node per GPU
(`--gpus 0,1`), each with its own CUDA_VISIBLE_DEVICES, under a supervisor that passes
SIGTERM (a drain: running runs finish, nothing new starts) on to every node."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

from worker.registry import DEVICES_ENV, declared_devices


def celery_worker_command(queues: str, concurrency: int, name: str) -> list[str]:
    """The Celery command line of one node named `<name>@<host>`."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app:app",
        "worker",
        "--queues",
        queues,
        "--concurrency",
        str(concurrency),
        "--pool",
        "prefork",
        "--hostname",
        f"{name}@%h",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]


def parse_gpus(text: str) -> list[str]:
    """GPU indices from `0,1,3`.

    >>> parse_gpus("0, 1,3")
    ['0', '1', '3']
    """
    gpus = [part.strip() for part in text.split(",") if part.strip()]
    if not gpus or not all(gpu.isdigit() for gpu in gpus) or len(set(gpus)) != len(gpus):
        raise ValueError(f"--gpus takes distinct GPU indices, e.g. 0,1; not {text!r}")
    return gpus


def per_gpu_nodes(
    gpus: list[str], queues: str, name: str, devices: str | None
) -> list[tuple[list[str], dict[str, str]]]:
    """One single-process node per GPU: its command and environment. Node i sees only GPU
    gpus[i]; with declared devices, it declares the i-th of them."""
    declared = declared_devices(devices) if devices else None
    if declared is not None and len(declared) != len(gpus):
        raise ValueError(f"--devices declares {len(declared)} devices for {len(gpus)} GPUs")
    nodes = []
    for position, gpu in enumerate(gpus):
        env = {"CUDA_VISIBLE_DEVICES": gpu}
        if declared is not None:
            device = declared[position]
            env[DEVICES_ENV] = f"{device['name']}:{device['memory_gib']:g}"
        nodes.append((celery_worker_command(queues, 1, f"{name}-gpu{gpu}"), env))
    return nodes


def supervise(nodes: list[tuple[list[str], dict[str, str]]]) -> int:
    """Start every node, pass SIGTERM and SIGINT on to all of them, wait for all; the
    worst exit status."""
    processes: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _: FrameType | None) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    # Before the first node starts: a SIGTERM from then on reaches every node started.
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for command, env in nodes:
        processes.append(subprocess.Popen(command, env={**os.environ, **env}))
    return max(process.wait() for process in processes)
