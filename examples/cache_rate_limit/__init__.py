"""Two instances sharing one TableCache: a rate limit and a shared fragment.

    python -m examples.cache_rate_limit

Starts its own Azurite, then two processes (instance A and instance B, as two
web servers behind a load balancer would be) that share one cache through
``TABLESESSIONS_CONNECTION_STRING``. Both serve requests of one user against a
limit of 40 per window: the counter is ``cache.incr``, atomic across processes,
so exactly 40 of their 60 requests pass. Instance A renders a page fragment
once and caches it; instance B serves it from the cache without rendering.
"""
