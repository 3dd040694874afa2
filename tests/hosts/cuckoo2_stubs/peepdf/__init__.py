# Inert stand-in for a third-party library that Cuckoo 2.0.7 imports at module level (tests/hosts/cuckoo2_run.py): never called on the path the host tests take.
