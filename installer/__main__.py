from llm_installer.cli import main

main()
