"""Performance benchmark of p2c-sync against the sandbox (issue 7); run with `make bench`."""
