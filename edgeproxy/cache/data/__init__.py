"""Data files of the semantic cache: the MiniLM tokenizer (NOTICE: its source, licence)."""
