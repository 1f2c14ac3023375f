from cmdai_cli.cli import main

main()
