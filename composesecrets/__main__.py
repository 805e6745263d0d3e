from composesecrets.cli import main

main()
