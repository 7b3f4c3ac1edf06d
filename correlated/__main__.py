"""`python -m correlated ...` is the `correlated` command."""
from . import main

main()
