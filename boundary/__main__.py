from boundary.cli import main

main()
