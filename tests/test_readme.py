"""README.md: the "Checking your own layer" example is a complete test that runs and passes,
and the commands it shows exist."""
import re
from pathlib import Path

from tinyllm.cli import COMMANDS

README = (Path(__file__).parent.parent / "README.md").read_text()


def section(title):
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_own_layer_example_is_a_passing_hypothesis_test():
    code = re.search(r"```python\n(.*?)```", section("Checking your own layer"), re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 15
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    namespace["test_gated"]()  # hypothesis runs its examples


def test_every_tinyllm_command_in_the_readme_exists():
    used = set(re.findall(r"^\s*(?:mpiexec [^\n]*?)?tinyllm (\w+)", README, re.M))
    assert used and used <= set(COMMANDS), used - set(COMMANDS)
