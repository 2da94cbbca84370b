"""Throughput and memory benchmarks of hsae against its peers (``python -m benchmarks``).

The training-step cases of one architecture are timed together in a worker process
(``benchmarks.worker``) on the same generated data and thread count, interleaved over rounds;
each case's memory is measured in a fresh process; HMS at scale (``benchmarks.hms``) and
extraction against the bare model forward (``benchmarks.extraction``) run in processes of their
own. The report gives medians and ratios as a Markdown table. SAELens and dictionary_learning
are optional (the ``bench`` extra); a peer that is not installed is skipped with a note.
See docs/performance.md.
"""
