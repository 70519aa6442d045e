"""The code part of a fingerprint follows the imports: editing a shared module re-runs exactly
the steps that import it (directly, lazily inside a function, or through other modules)."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from tasks.common import step as step_module
from tasks.common.step import (
    REPO_PACKAGES,
    clear_code_cache,
    code_files,
    code_version,
    run_step,
)

SPARK_STEPS = ["tasks.crawl.task", "tasks.extract.task", "tasks.curate.task", "tasks.tokenize.task"]
OTHER_STEPS = ["tasks.train.task", "tasks.evaluate.task", "tasks.register.task"]


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_code_cache()
    yield
    clear_code_cache()


@pytest.mark.parametrize("entry", SPARK_STEPS + OTHER_STEPS)
def test_a_step_module_depends_on_the_shared_modules_it_imports(entry):
    files = code_files([entry])
    own = entry.replace(".", "/") + ".py"
    assert {own, "tasks/common/step.py", "tasks/config.py", "tasks/__init__.py"} <= set(files)
    assert "model/config.py" in files  # tasks/config.py imports it
    if entry in SPARK_STEPS:
        assert "tasks/common/spark.py" in files
    assert all(not Path(f).is_absolute() and "__pycache__" not in f for f in files)
    assert list(files) == sorted(files)


def test_lazy_imports_inside_functions_are_followed():
    # tasks/register/task.py imports mlflow inside a function; model/evaluate.py is reached
    # from the evaluate step through tasks/evaluate/report.py
    assert "model/evaluate.py" in code_files(["tasks.evaluate.task"])
    assert "model/eval_tasks.py" in code_files(["tasks.evaluate.task"])  # `from model import x`


def test_code_run_outside_the_process_is_named_explicitly():
    train = code_files(["tasks.train.task"])
    assert "model/launch.py" in train and "model/train.py" not in train  # a subprocess module
    with_ranks = code_files(["tasks.train.task", "model.train"])
    assert {"model/train.py", "model/gpt.py", "model/engine.py"} <= set(with_ranks)
    crawl = code_files(["tasks.crawl.task", "tasks/crawl/pydoc_render.py"])
    assert "tasks/crawl/pydoc_render.py" in crawl  # run as a script by path
    register = code_files(["tasks.register.task", "tasks/register/pyfunc_model.py", "model"])
    model_sources = {
        p.relative_to(REPO_PACKAGES).as_posix() for p in Path(REPO_PACKAGES, "model").glob("*.py")
    }
    assert model_sources <= set(register)  # the whole package ships with the model


def _code_argument(call: ast.Call) -> ast.expr:
    if len(call.args) >= 5:
        return call.args[4]
    return next(k.value for k in call.keywords if k.arg == "code")


def test_every_step_names_its_entry_modules_not_a_hand_written_list():
    callers = 0
    for source in sorted(REPO_PACKAGES.glob("tasks/**/*.py")) + sorted(
        REPO_PACKAGES.glob("flows/**/*.py")
    ):
        if source.name == "step.py":
            continue
        name = ".".join(source.relative_to(REPO_PACKAGES).with_suffix("").parts)
        for node in ast.walk(ast.parse(source.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "run_step"):
                continue
            callers += 1
            code = _code_argument(node)
            assert isinstance(code, ast.List), f"{source}: the code argument is not a list"
            entries = [
                name if isinstance(e, ast.Name) and e.id == "__name__" else ast.literal_eval(e)
                for e in code.elts
            ]
            assert name in entries, f"{source}: run_step's code does not name __name__"
            files = code_files(entries)
            assert {source.relative_to(REPO_PACKAGES).as_posix(), "tasks/config.py"} <= set(files)
            assert "tasks/common/step.py" in files
    assert callers >= 8  # crawl, extract, curate, tokenize, train, evaluate, register, finetune


FAKE_TREE = {
    "tasks/__init__.py": "",
    "tasks/common/__init__.py": "",
    "tasks/common/shared.py": "VALUE = 1\n",
    "tasks/common/other.py": "import json\nimport numpy  # third-party: not followed\n",
    "tasks/config.py": "from tasks.common.other import json\n",
    # a: a plain top-level import of the shared module
    "tasks/a/__init__.py": "",
    "tasks/a/task.py": "from tasks.common.shared import VALUE\n",
    # b: a relative import, lazily inside a function
    "tasks/b/__init__.py": "",
    "tasks/b/task.py": "def run():\n    from ..common import shared\n    return shared.VALUE\n",
    # c: the shared module only through another project module (`from pkg import submodule`)
    "tasks/c/__init__.py": "",
    "tasks/c/helper.py": "from tasks.common import shared\n",
    "tasks/c/task.py": "import tasks.c.helper\n",
    # d: does not import the shared module at all
    "tasks/d/__init__.py": "",
    "tasks/d/task.py": "from tasks import config\nfrom . import missing_name\n",
}
STEPS = ["tasks.a.task", "tasks.b.task", "tasks.c.task", "tasks.d.task"]


def fake_repo(root: Path) -> Path:
    for relative, text in FAKE_TREE.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def versions(root: Path) -> dict[str, str]:
    return {entry: code_version([entry], root) for entry in STEPS}


def test_closure_of_the_fake_tree(tmp_path):
    root = fake_repo(tmp_path)
    assert code_files(["tasks.b.task"], root) == (
        "tasks/__init__.py",
        "tasks/b/__init__.py",
        "tasks/b/task.py",
        "tasks/common/__init__.py",
        "tasks/common/shared.py",
    )
    assert "tasks/common/shared.py" in code_files(["tasks.c.task"], root)
    assert code_files(["tasks.d.task"], root) == (
        "tasks/__init__.py",
        "tasks/common/__init__.py",
        "tasks/common/other.py",
        "tasks/config.py",
        "tasks/d/__init__.py",
        "tasks/d/task.py",
    )
    with pytest.raises(FileNotFoundError, match="neither a module"):
        code_files(["tasks.nowhere"], root)


def test_editing_a_shared_module_changes_exactly_the_steps_that_import_it(tmp_path):
    root = fake_repo(tmp_path / "repo")
    before = versions(root)
    assert len(set(before.values())) == 4
    assert versions(root) == before  # nothing changed: the same versions

    # the same files elsewhere: the same versions (only repo-relative paths are hashed)
    elsewhere = tmp_path / "copy"
    shutil.copytree(root, elsewhere)
    assert versions(elsewhere) == before

    (root / "tasks/common/shared.py").write_text("VALUE = 2\n")
    assert versions(root) == before  # cached for the process...
    clear_code_cache()  # ...until asked to look again
    after = versions(root)
    assert {e for e in STEPS if after[e] != before[e]} == {
        "tasks.a.task",
        "tasks.b.task",
        "tasks.c.task",
    }

    (root / "tasks/__init__.py").write_text("# the package's init runs on every import\n")
    clear_code_cache()
    assert all(v != after[e] for e, v in versions(root).items())


def test_run_step_reuses_its_output_until_a_module_it_imports_changes(tmp_path, monkeypatch):
    root = fake_repo(tmp_path / "repo")
    monkeypatch.setattr(step_module, "REPO_PACKAGES", root)
    work = tmp_path / "work"
    calls: list[str] = []

    def step(name: str, entry: str):
        def build(out: Path) -> dict:
            calls.append(name)
            return {"step": name}

        return run_step(work, name, {"n": 1}, [], [entry], build)

    first = {"a": step("a", "tasks.a.task"), "d": step("d", "tasks.d.task")}
    assert calls == ["a", "d"] and not any(r.skipped for r in first.values())
    clear_code_cache()  # a new process: nothing changed on disk, everything is reused
    again = {"a": step("a", "tasks.a.task"), "d": step("d", "tasks.d.task")}
    assert calls == ["a", "d"] and all(r.skipped for r in again.values())
    assert {k: r.fingerprint for k, r in again.items()} == {
        k: r.fingerprint for k, r in first.items()
    }

    (root / "tasks/common/shared.py").write_text("VALUE = 3\n")
    clear_code_cache()  # the next run sees the edit
    rerun = {"a": step("a", "tasks.a.task"), "d": step("d", "tasks.d.task")}
    assert calls == ["a", "d", "a"]
    assert not rerun["a"].skipped and rerun["a"].fingerprint != first["a"].fingerprint
    assert rerun["d"].skipped and rerun["d"].fingerprint == first["d"].fingerprint
    assert sorted(p.name for p in (work / "a").iterdir()) == sorted(
        [first["a"].fingerprint, rerun["a"].fingerprint]
    )


def test_entries_are_order_free_and_must_be_a_list(tmp_path):
    root = fake_repo(tmp_path)
    assert code_version(["tasks.a.task", "tasks.d.task"], root) == code_version(
        ["tasks.d.task", "tasks.a.task", "tasks.a.task"], root
    )
    with pytest.raises(TypeError, match="list of names"):
        code_version("tasks.a.task", root)
