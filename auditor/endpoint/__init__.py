"""The endpoint: its configuration and keyed HTTP client, the capability probe, token counting,
prices and API-key handling. Adapters for each wire format live in the top-level `providers` package."""
