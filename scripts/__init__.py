"""Build, setup and recording scripts. Run the Python ones as modules from the repository root
(`python -m scripts.NAME`), so they import the package and tests.support without editing sys.path."""
