"""Persistent state: the workspace's folders, history.db (peewee) and the object store."""
