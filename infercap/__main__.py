from infercap.cli import main

main()
