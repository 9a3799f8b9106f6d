"""House rules that keep the README's two commands true."""

import pathlib
import re
import subprocess
import sys

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


# -- the docs' commands and paths -----------------------------------------------

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def doc_commands():
    """``(doc, script, flags)`` for every ``python scripts/<name>.py ...``
    command in the README and docs/ (continuation lines joined)."""
    found = []
    for doc in DOCS:
        text = doc.read_text().replace("\\\n", " ")
        for match in re.finditer(r"python (scripts/\w+\.py)([^\n`|]*)", text):
            flags = re.findall(r"(?<![\w-])--([A-Za-z_][\w]*)", match.group(2))
            found.append((doc.name, match.group(1), flags))
    return found


def help_flags(scripts):
    """Every flag each script accepts, from its own ``--helpfull``."""
    processes = {s: subprocess.Popen([sys.executable, str(ROOT / s), "--helpfull"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, cwd=ROOT) for s in scripts}
    flags = {}
    for script, process in processes.items():
        out, _ = process.communicate(timeout=300)
        names = set(re.findall(r"^\s+--(?:\[no\])?(\w+)", out, re.M))
        assert "helpfull" in names or "help" in names, f"{script} --helpfull printed no flags:\n{out[-2000:]}"
        flags[script] = names
    return flags


def test_every_documented_command_uses_flags_its_script_has():
    commands = doc_commands()
    assert len(commands) > 30 and {"README.md", "usage.md"} <= {doc for doc, _, _ in commands}
    scripts = sorted({script for _, script, _ in commands})
    missing = [s for s in scripts if not (ROOT / s).exists()]
    assert not missing, f"documented scripts that do not exist: {missing}"
    known = help_flags(scripts)
    unknown = sorted({(doc, script, flag) for doc, script, flags in commands for flag in flags
                      if flag not in known[script] and not (flag.startswith("no") and flag[2:] in known[script])})
    assert not unknown, f"documented flags the scripts do not have: {unknown}"


def test_every_linked_or_named_repository_path_exists():
    missing = []
    for doc in DOCS:
        text = doc.read_text()
        links = [m for m in re.findall(r"\]\(([^)#\s]+)", text) if "://" not in m]
        missing += [(doc.name, link) for link in links if not (doc.parent / link).exists()]
        named = re.findall(r"`((?:leed_tf|scripts|tests|docs)/[\w/.-]*\w)`", text)
        missing += [(doc.name, path) for path in named if not (ROOT / path).exists()]
    assert not missing, f"paths in the docs that do not exist: {missing}"
