"""Work beyond one machine on a Ray cluster (the optional extra `whaleid[cluster]`).

Ray Data workers describe and identify photos (`batches`); the IVF descriptor index is
filled shard by shard on workers and merged (`index_build`), and searched across actors
when it does not fit one machine (`sharded_search`). The catalogue's SQLite keeps one
writer, the process that started the run. Nothing here imports Ray until it is called.
"""
