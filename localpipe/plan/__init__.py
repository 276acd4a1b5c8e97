"""Planning: pure functions from declarations to a validated graph of steps with cache keys."""
