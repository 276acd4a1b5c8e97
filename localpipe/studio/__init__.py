"""The studio: ``localpipe serve``, a local web page of a workspace's runs (docs/studio.md).

``app.create_app`` makes the application (pages in ``pages``, drawn by ``render`` from the
templates, pictures laid out by ``graphics``); ``security`` holds the token checks; ``server``
runs it on uvicorn. It reads history.db through ``state.views`` only, on a read-only connection.
"""
