"""Every public function and class defined in common/ is exercised by name in some test under tests/."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def public_names(path):
    tree = ast.parse(path.read_text())
    return [n.name for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")]


def test_every_public_name_in_common_is_tested():
    tests_text = "\n".join(p.read_text() for p in (REPO / "tests").glob("test_*.py")
                           if p.name != Path(__file__).name)
    untested = [f"{py.relative_to(REPO)}:{name}" for py in sorted((REPO / "common").rglob("*.py"))
                for name in public_names(py) if name not in tests_text]
    assert not untested, "no test mentions: " + ", ".join(untested)
