"""The exact cache (L1 in process, L2 in Redis) and what decides what it may answer."""
