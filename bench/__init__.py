"""The edgeproxy benchmark: what the proxy costs in CPU and latency over a direct connection.

Run it with `make bench` (or `python -m bench --help`). It starts the fake upstream and the proxy
as pinned subprocesses, drives closed-loop load against both the upstream directly and the proxy,
interleaved and repeated, and reports medians as a markdown table and JSON lines. A chaos run
(bench/chaos.py) then puts the proxy in front of three upstreams, one of them flapping, and
reports what its clients saw.
"""
