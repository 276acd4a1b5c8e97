"""The engine: submitting, deciding, launching and recording step runs; the scheduler owns every state change."""
