"""Everything a person or program talks to: configuration, the `whaleid` command line and
the HTTP service. It turns requests into indexer calls and holds no identification logic.
"""
