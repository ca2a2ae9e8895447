"""Exit codes shared by every subcommand."""

BAD_INPUT = 2
"""A bad program, config, file, name or option: the code argparse exits with for a bad command line."""
