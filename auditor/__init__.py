"""auditor: tell whether a language model was trained on a multiple-choice benchmark, from an endpoint."""

__version__ = "0.1.0"
