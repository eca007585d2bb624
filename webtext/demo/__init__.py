"""The embedded offline demo: generated inputs (``generate``) and the job that runs on them."""
