"""Content: walking folder trees with their ignore rules and hashing what is in them.

Below both planning and state: source directories, datasets and step outputs are all hashed
here, and the stat cache that saves re-reading unchanged files lives here too.
"""
