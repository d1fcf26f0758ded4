"""Kept so `from client.sdk import MemlabClient` goes on working: the SDK is
`memlab_client.sdk` now (the `memlab-client` distribution in clients/python)."""

from memlab_client.sdk import TERMINAL, MemlabClient, MemlabError

__all__ = ["TERMINAL", "MemlabClient", "MemlabError"]
