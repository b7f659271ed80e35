"""One module per evaluation protocol, each with the parser of its own protocol files."""
