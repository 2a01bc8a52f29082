from vmcr2_cli.cli import main

main()
