"""Handles on recorded work (experiments, pipeline and step runs, the in-step run context) and the
SDK's workspace service."""
