"""
Example handlers, each runnable as `twistd -n pace --handler examples.NAME.handle`.
"""
