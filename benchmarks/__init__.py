"""combgrad's benchmark suite: ``python -m benchmarks [solvers|losses|combinatorial] [--quick]``.

Every section times its variants interleaved after warm-up calls and prints median times
and ratios against reference libraries measured in the same run (see ``_timing``). Speed
targets are printed with a yes/no, never asserted. Results and their discussion:
``docs/performance.md``.
"""
