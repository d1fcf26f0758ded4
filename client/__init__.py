"""The server's side of the `memlab` command line (serve, worker, reaper, migrate); the
SDK and the client commands are the `memlab-client` distribution (clients/python)."""
