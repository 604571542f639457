"""`python -m tinyllm.cli ...` is the `tinyllm` command."""
from tinyllm.cli import main

main()
