"""`python -m bench --size N` (what `make bench` runs); see bench/run.py."""

from bench.run import main

raise SystemExit(main())
