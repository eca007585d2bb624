"""The foundation every stage shares: config, storage, shard formats, elements, run layout, errors.

Nothing here imports a stage or the application; every stage and the application import it.
"""
