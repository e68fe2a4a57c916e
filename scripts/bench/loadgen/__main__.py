"""`python scripts/bench/loadgen ...` or `python -m loadgen ...` (with scripts/bench on the path)."""
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from loadgen.cli import main
else:
    from .cli import main

main()
