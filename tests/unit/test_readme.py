"""The README's two set-up commands are the ones that run: .ci/run uses the test command verbatim."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _commands_in_readme() -> list[str]:
    text = (REPO / "README.md").read_text()
    return [line.strip() for line in text.splitlines() if line.strip().startswith("python3 -m venv")]


def test_readme_has_exactly_two_setup_commands():
    commands = _commands_in_readme()
    assert len(commands) == 2, commands
    assert "python run_all.py --backend all --dataset mnist" in commands[0]
    assert "python -m pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci_lines = [l.strip() for l in (REPO / ".ci" / "run").read_text().splitlines()]
    assert _commands_in_readme()[1] in ci_lines
