"""Stand-ins for tests and benchmarks: the hosted LLM played by a local OpenAI-compatible server
(`fake_llm`), and real HTTP on loopback from a background thread (`threaded_server`).
The product never imports this package (tests/test_layering.py checks it)."""
