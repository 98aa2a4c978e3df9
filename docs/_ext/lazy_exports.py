"""Griffe extension: make lazily exported names visible to mkdocstrings.

`combgrad` and `solvers` (and some subpackages) export names through a module-level dict
(`_EXPORTS` or `_LAZY`, name -> module) and `__getattr__`, so that importing the package stays
light. Static analysis cannot see those names; this extension reads the dict literal and adds
one alias per name, so that `::: combgrad.lp_value` renders under its public path.

A value is a module path: absolute when it starts with the top-level package name, otherwise
relative to the package that holds the dict (`"files"` in `solvers` is `solvers.files`).
"""

from __future__ import annotations

import ast
from typing import Any

import griffe

_DICT_NAMES = ("_EXPORTS", "_LAZY")


class LazyExports(griffe.Extension):
    """Add an alias for every entry of a package's `_EXPORTS` / `_LAZY` dict."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        self._visit(pkg, pkg.name)

    def _visit(self, mod: griffe.Module, top: str) -> None:
        for dict_name in _DICT_NAMES:
            attr = mod.members.get(dict_name)
            if attr is None or getattr(attr, "value", None) is None:
                continue
            try:
                mapping = ast.literal_eval(str(attr.value))
            except (ValueError, SyntaxError):
                continue
            if not isinstance(mapping, dict):
                continue
            for name, module in mapping.items():
                if not (isinstance(name, str) and isinstance(module, str)) or name in mod.members:
                    continue
                module = module.lstrip(".")
                target_mod = module if module.split(".")[0] == top else f"{mod.path}.{module}"
                mod.set_member(name, griffe.Alias(name, f"{target_mod}.{name}", parent=mod))
        for member in list(mod.members.values()):
            if not member.is_alias and member.is_module:
                self._visit(member, top)
