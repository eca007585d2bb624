"""Data files shipped with the pipeline (a package so that wheels include them).

- ``blocklist.txt``: the default domain blocklist of the URL filters (``url.blocklist``). Its
  header documents the format and why each group of hosts is there; replace it with your own
  file through ``filter.blocklist`` (``--filter-blocklist PATH``).
"""
