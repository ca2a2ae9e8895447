"""symdisc: symbolic discovery of optimization algorithms. The command line lives here."""

__version__ = "0.1.0"
