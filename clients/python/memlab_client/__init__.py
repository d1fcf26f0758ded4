"""memlab's Python client: the SDK (`MemlabClient`) and the `memlab` command line
(`memlab_client.cli`), for a memlab server anywhere over HTTP."""

from memlab_client.sdk import TERMINAL, MemlabClient, MemlabError

__all__ = ["TERMINAL", "MemlabClient", "MemlabError"]
