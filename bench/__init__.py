"""The edgeproxy benchmark: what the proxy costs in CPU and latency over a direct connection.

Run it with `make bench` (or `python -m bench --help`). It starts the fake upstream and the proxy
as pinned subprocesses, with the bare aiohttp floor and nginx beside the proxy as references,
drives closed-loop load against the upstream directly, the proxy and the references,
interleaved and repeated, and reports medians as a markdown table and JSON lines, with issue
11's targets judged as ratios to the references. A memory soak (bench/soak.py) then reads the
proxy's RSS over 100,000 requests, and a chaos run (bench/chaos.py) puts the proxy in front of
three upstreams, one of them flapping, and reports what its clients saw.
"""
