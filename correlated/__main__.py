"""`python -m correlated ...` is the `correlated` command."""
from .cli import main

main()
