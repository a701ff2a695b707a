#!/usr/bin/env python3
"""Print the package's import graph figures: circles and function-level imports.

Reads the source with ``ast`` (nothing is imported), so it runs without Django.
Usage: scripts/import-graph.py [package_dir]  (default: openwisp_modem_upgrader)
Tests and migrations are left out: they are not part of the layering.
"""

import ast
import os
import sys

SKIPPED_DIRS = {"tests", "migrations", "__pycache__"}


def module_files(package_dir):
    package = os.path.basename(os.path.normpath(package_dir))
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, os.path.dirname(os.path.normpath(package_dir)))
            parts = rel[:-3].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path, package


def resolve(module, node, is_package):
    """The absolute names an import node refers to (module or module.attr)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [prefix] + ["%s.%s" % (prefix, alias.name) for alias in node.names]


def build_graph(package_dir):
    modules = {}
    for name, path, package in module_files(package_dir):
        modules[name] = path
    graph = {name: set() for name in modules}
    function_level = []
    for name, path in modules.items():
        with open(path) as source:
            tree = ast.parse(source.read(), path)
        is_package = path.endswith("__init__.py")
        nested = set()
        for func in ast.walk(tree):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(func):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        nested.add(id(inner))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets = set()
            names = resolve(name, node, is_package)
            if isinstance(node, ast.ImportFrom) and any(
                n in modules for n in names[1:]
            ):
                # "from . import settings" names the module, not the package
                names = [n for n in names[1:] if n in modules]
            for target in names:
                # "from .x import y" names x
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
            graph[name] |= targets
            if id(node) in nested and targets:
                function_level.append((name, node.lineno, sorted(targets)))
    return graph, function_level


def strongly_connected(graph):
    """Tarjan's algorithm, iterative enough for a few hundred modules."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            result.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [c for c in result if len(c) > 1]


def main():
    package_dir = sys.argv[1] if len(sys.argv) > 1 else "openwisp_modem_upgrader"
    graph, function_level = build_graph(package_dir)
    circles = strongly_connected(graph)
    print("modules: %d, arrows: %d" % (len(graph), sum(map(len, graph.values()))))
    print("circles (strongly connected components): %d" % len(circles))
    for circle in circles:
        members = set(circle)
        arrows = sum(len(graph[m] & members) for m in circle)
        print("  %d modules, %d arrows: %s" % (len(circle), arrows, ", ".join(circle)))
    print("function-level imports: %d" % len(function_level))
    for module, line, targets in function_level:
        print("  %s:%d -> %s" % (module, line, ", ".join(targets)))
    return 1 if circles else 0


if __name__ == "__main__":
    sys.exit(main())
