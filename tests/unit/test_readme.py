"""The README's two set-up commands are the ones that run: .ci/run uses the test command verbatim."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _commands_in_readme() -> list[str]:
    text = (REPO / "README.md").read_text()
    return [line.strip() for line in text.splitlines() if line.strip().startswith("python3 -m venv")]


def test_readme_has_exactly_two_setup_commands():
    commands = _commands_in_readme()
    assert len(commands) == 2, commands
    assert "python run_all.py --backend all@newest --dataset mnist" in commands[0]
    assert "python -m tools.envs create newest &&" in commands[0]  # the environment it names
    assert "python -m pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci_lines = [l.strip() for l in (REPO / ".ci" / "run").read_text().splitlines()]
    assert _commands_in_readme()[1] in ci_lines


def test_readme_says_what_the_install_needs():
    """The set-up section names the package registry the install downloads from; "offline is
    fine" was true of a run, not of the install."""
    text = (REPO / "README.md").read_text()
    setup = text.split("## Set up and run", 1)[1].split("\n## ", 1)[0]
    assert "package registry" in setup.splitlines()[0] and "offline is fine" not in text
