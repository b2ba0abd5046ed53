"""Every public function and class defined in common/ is exercised in some test under tests/.

"Exercised" is read from the tests' syntax trees, not their text, so a name in a comment, a docstring or an import
line does not count: a function must be called (or passed to a call, used as a decorator, or listed in a tuple or
list of callables that a test loops over), and a class must be used in code (instantiated, subclassed, or named in
`pytest.raises`/`isinstance`).
"""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def public_names(path):
    """{name: "function" | "class"} of the public top-level definitions in `path`."""
    tree = ast.parse(path.read_text())
    return {n.name: "class" if isinstance(n, ast.ClassDef) else "function" for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")}


def _name(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def used_names(source):
    """(called, referenced): names called, passed to a call or used as decorators; names loaded anywhere in code."""
    called, referenced = set(), set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            called.update(filter(None, map(_name, [node.func, *node.args, *(k.value for k in node.keywords)])))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            called.update(filter(None, (_name(d.func if isinstance(d, ast.Call) else d) for d in node.decorator_list)))
        elif isinstance(node, (ast.Tuple, ast.List)) and isinstance(node.ctx, ast.Load):  # a table of callables
            called.update(filter(None, map(_name, node.elts)))
        if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load):
            referenced.add(_name(node))
    return called, referenced


def test_used_names_ignores_comments_strings_and_imports():
    called, referenced = used_names(
        "from m import only_imported, called_fn, Klass  # mentions in_a_comment\n"
        "'in_a_string'\n"
        "@deco\n"
        "def test_x():\n"
        "    called_fn(1, key=passed_fn)\n"
        "    for make in (listed_fn,):\n"
        "        make()\n"
        "    with raises(Klass):\n"
        "        pass\n")
    assert {"called_fn", "passed_fn", "listed_fn", "deco", "raises"} <= called
    assert "Klass" in referenced
    for absent in ("only_imported", "in_a_comment", "in_a_string"):
        assert absent not in called | referenced


def test_every_public_name_in_common_is_tested():
    called, referenced = set(), set()
    for p in (REPO / "tests").glob("test_*.py"):
        if p.name != Path(__file__).name:
            c, r = used_names(p.read_text())
            called |= c
            referenced |= r
    untested = [f"{py.relative_to(REPO)}:{name}" for py in sorted((REPO / "common").rglob("*.py"))
                for name, kind in public_names(py).items()
                if name not in (called if kind == "function" else referenced)]
    assert not untested, "no test calls (functions) or uses (classes): " + ", ".join(untested)
