"""`python -m llm_runtime serve --model DIR ...`"""

from llm_runtime.cli import main

if __name__ == "__main__":
    main()
