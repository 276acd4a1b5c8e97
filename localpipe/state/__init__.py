"""State: the one owner of history.db (``history.History``), the object store, the workspace's folders."""
