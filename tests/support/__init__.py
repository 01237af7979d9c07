"""Shared test support: fake and fault-injecting servers, real-server launchers (vLLM, llama-cpp-python),
GGUF tools. Imported by tests, bench/ and scripts/; never imports a test module."""
