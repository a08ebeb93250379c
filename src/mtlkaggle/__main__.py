from mtlkaggle.cli import main

main()
