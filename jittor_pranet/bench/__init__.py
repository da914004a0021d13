"""Benchmarks of the Jittor models against the PyTorch reference (needs torch; nothing in the core
library imports this package).

* :mod:`.benchmark`: the measurements (:func:`~.benchmark.run_benchmark`) and their tables;
* :mod:`.command`: ``jittor-pranet bench`` (``cli/bench.py`` only declares its options).
"""
