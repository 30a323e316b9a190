"""`python -m dataflow` runs the command line."""

from dataflow.cli.app import main

main()
