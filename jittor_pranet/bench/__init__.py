"""Benchmarks of the Jittor models against the PyTorch reference (needs torch; nothing in the core
library imports this package).

* :mod:`.benchmark`: the run (:class:`~.benchmark.BenchConfig`, :func:`~.benchmark.run_benchmark`);
* :mod:`.timing`: how it measures (warm-up, interleaved rounds, peak memory, matmul peak);
* :mod:`.model_set`: what it measures (a model's PyTorch twin and Jittor variants as calls, its FLOPs);
* :mod:`.report`: the derived figures, summaries, Markdown tables and JSON;
* :mod:`.memory`: peak training memory, each framework in a child process (``tools/bench_memory.py``);
* :mod:`.command`: ``jittor-pranet bench`` (``cli/bench.py`` only declares its options).
"""
