"""Throughput and memory benchmarks of hsae against its peers (``python -m benchmarks``).

Every case runs in its own worker process (``benchmarks.worker``) on the same generated data and
thread count; the harness runs all cases once per round, several rounds interleaved, and reports
medians and ratios as a Markdown table. SAELens and dictionary_learning are optional
(``pip install -e .[bench]``); a peer that is not installed is skipped with a note.
See docs/performance.md.
"""
