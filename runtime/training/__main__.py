"""`python -m llm_runtime.training --model DIR --data PATH [...]`."""

import sys

from llm_runtime.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
