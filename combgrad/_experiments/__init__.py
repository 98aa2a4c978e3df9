"""Training code shared by the paper-reproduction examples and `python -m combgrad demo`.

Private: the examples under `examples/` and `combgrad.demo` import from here so that
the flagship demo and the full experiment run the same code.
"""
