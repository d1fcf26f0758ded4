"""memlab's Python SDK (`client.sdk.MemlabClient`) and the `memlab` command line."""
