"""One module per verb of the command line; each maps flags to a library call."""
