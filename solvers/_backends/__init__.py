"""Backend adapters. Private: use [`solvers.solve`][solvers.solve] and [`solvers.available_backends`][solvers.available_backends]."""
