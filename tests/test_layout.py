"""The layout contract of CONTRIBUTING.md, checked on this repository (and on broken copies, so it can fail).

Also runnable by hand: `python tests/test_layout.py [REPO_ROOT]` prints one line per problem.
"""
import ast
import re
import sys
from pathlib import Path

AREAS = ("distillation", "prompt_tuning", "virtual_tryon", "semi_supervised", "vos", "hgb_benchmark")
TOP_LEVEL = ("README.md", "Makefile", "requirements.txt", "pyproject.toml", "CONTRIBUTING.md", ".ci/run",
             "common/__init__.py")
PER_METHOD = ("README.md", "train.sh", "eval.sh", "__init__.py", "train.py", "eval.py", "configs/smoke.yaml",
              "requirements.txt")


def requirement_names(path):
    """Lower-case distribution names in a requirements file ('_' read as '-')."""
    if not path.is_file():
        return set()
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"[A-Za-z0-9_.\-]+", line)
        if m and not line.startswith("-"):
            names.add(m.group(0).lower().replace("_", "-"))
    return names


def find_methods(root):
    """{package name: folder} for every method folder (a sub-folder of an area with train.sh or __init__.py)."""
    methods, problems = {}, []
    for area in AREAS:
        for d in sorted((root / area).glob("*/")):
            if d.name.startswith((".", "_")) or d.name in ("data", "runs"):
                continue
            if not ((d / "train.sh").exists() or (d / "__init__.py").exists()):
                continue
            if d.name in methods:
                problems.append(f"package name {d.name} is used by both {methods[d.name]} and {d}")
            methods[d.name] = d
    return methods, problems


def import_problems(path, root, methods, own=None):
    """Top-level modules a file imports that it must not, and sys.path edits."""
    rel = path.relative_to(root)
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as e:
        return [f"{rel}: does not parse: {e}"]
    problems = []
    in_tests = own is not None and "tests" in path.relative_to(methods[own]).parts
    for node in ast.walk(tree):
        mods = []
        if isinstance(node, ast.Import):
            mods = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            mods = [node.module.split(".")[0]]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("insert", "append", "extend") \
                and ast.unparse(node.func.value) == "sys.path":
            problems.append(f"{rel}:{node.lineno}: edits sys.path")
        for mod in mods:
            if own is None and mod in methods:
                problems.append(f"{rel}:{node.lineno}: common/ imports the method {mod}")
            elif own is not None and mod in methods and mod != own:
                problems.append(f"{rel}:{node.lineno}: imports another method ({mod})")
            elif own is not None and mod == own and not in_tests:
                problems.append(f"{rel}:{node.lineno}: imports its own package by name; use a relative import")
    return problems


def check(root):
    root = Path(root).resolve()
    problems = [f"missing top-level file: {f}" for f in TOP_LEVEL if not (root / f).exists()]
    problems += [f"missing top-level folder: {d}/" for d in (*AREAS, "common", "tests") if not (root / d).is_dir()]
    problems += [f"{a}/README.md missing" for a in AREAS
                 if (root / a).is_dir() and not (root / a / "README.md").exists()]
    methods, dup = find_methods(root)
    problems += dup
    root_reqs = requirement_names(root / "requirements.txt")
    for name, d in methods.items():
        rel = d.relative_to(root)
        problems += [f"{rel}: missing {f}" for f in PER_METHOD if not (d / f).exists()]
        if not list((d / "tests").glob("test_*.py")):
            problems.append(f"{rel}: no tests/test_*.py")
        extra = requirement_names(d / "requirements.txt") - root_reqs
        if extra:
            problems.append(f"{rel}: requirements missing from the root requirements.txt: {sorted(extra)}")
        for py in sorted(d.rglob("*.py")):
            problems += import_problems(py, root, methods, own=name)
    for py in sorted((root / "common").rglob("*.py")):
        problems += import_problems(py, root, methods)
    return problems


def test_this_repository_follows_the_layout():
    problems = check(Path(__file__).resolve().parent.parent)
    assert not problems, "\n".join(problems)


def test_the_rules_catch_violations(tmp_path):
    for f in TOP_LEVEL:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("torch\n" if f == "requirements.txt" else "")
    for d in (*AREAS, "tests"):
        (tmp_path / d).mkdir(exist_ok=True)
        (tmp_path / d / "README.md").write_text("")
    assert check(tmp_path) == []
    a, b = tmp_path / "vos" / "alpha", tmp_path / "hgb_benchmark" / "beta"
    for m in (a, b):
        (m / "tests").mkdir(parents=True)
        for f in PER_METHOD:
            (m / f).parent.mkdir(parents=True, exist_ok=True)
            (m / f).write_text("")
        (m / "tests" / "test_x.py").write_text("")
    assert check(tmp_path) == []
    (a / "train.py").write_text("import sys\nsys.path.insert(0, '..')\nfrom beta import model\nimport alpha\n")
    (a / "requirements.txt").write_text("mmcv\n")
    (b / "eval.py").unlink()
    (tmp_path / "common" / "x.py").write_text("import alpha\n")
    problems = "\n".join(check(tmp_path))
    for expected in ("edits sys.path", "imports another method (beta)", "imports its own package by name",
                     "['mmcv']", "beta: missing eval.py", "common/ imports the method alpha"):
        assert expected in problems, problems


if __name__ == "__main__":
    found = check(sys.argv[1] if len(sys.argv) > 1 else ".")
    print("\n".join(found + [f"{len(found)} problems"]))
    sys.exit(1 if found else 0)
