"""Handles on recorded work: experiments, pipeline and step runs, and the in-step run context."""
