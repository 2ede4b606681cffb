"""HTTP/1.1 on asyncio protocols: knows bytes, not LLMs."""
