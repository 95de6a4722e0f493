"""The use cases: one module per command, each a plain function from a request to a result."""
