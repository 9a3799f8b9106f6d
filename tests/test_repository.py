"""House rules that keep the README's two commands true."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def readme_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_two_commands():
    text = (ROOT / "README.md").read_text()
    assert text.index("```bash") < 200, "the commands must open the README"
    main_job, tests = readme_commands()
    assert "scripts/train.py" in main_job and "pytest" in tests


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci


def test_no_addons_package():
    banned = "tensorflow" + "_addons"  # spelled apart so this file does not match itself
    for path in list((ROOT / "leed_tf").rglob("*.py")) + list((ROOT / "scripts").rglob("*.py")):
        assert banned not in path.read_text(), path
