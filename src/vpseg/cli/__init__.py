"""The ``vpseg`` command line."""
