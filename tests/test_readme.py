"""README.md: the "Checking your own layer" example is a complete test that runs and passes,
and the commands it shows exist."""
import importlib.util
import re
from pathlib import Path

from tinyllm.cli import COMMANDS

README = (Path(__file__).parent.parent / "README.md").read_text()


def section(title):
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_own_layer_example_is_a_passing_hypothesis_test(tmp_path):
    code = re.search(r"```python\n(.*?)```", section("Checking your own layer"), re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 15
    (tmp_path / "readme_layer.py").write_text(code)  # a real file: hypothesis reads its source
    spec = importlib.util.spec_from_file_location("readme_layer", tmp_path / "readme_layer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_gated()  # hypothesis runs its examples


def test_every_tinyllm_command_in_the_readme_exists():
    used = set(re.findall(r"^\s*(?:mpiexec [^\n]*?)?tinyllm (\w+)", README, re.M))
    assert used and used <= set(COMMANDS), used - set(COMMANDS)
