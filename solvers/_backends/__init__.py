"""Backend adapters. Private: use :func:`solvers.solve` and :func:`solvers.available_backends`."""
