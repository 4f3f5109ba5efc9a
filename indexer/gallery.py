"""The identification engine: a gallery of photos of known individuals, searchable.

API CONTRACT (implementation in progress by the lead; the CLI and service code against
these signatures):

    gallery = Gallery.open(data_dir, features=KeypointConfig(), engine=EngineConfig())
    gallery.enrol(photo, individual_id, species=None, source_name="") -> EnrolResult
    gallery.identify(photo, top_k=None) -> Identification
    gallery.rebuild(progress=None)          # progress(done, total) callback
    gallery.save()                          # write derived index files atomically
    gallery.stats() -> GalleryStats
    gallery.store -> indexer.store.Store    # catalogue reads/changes
    gallery.close()                         # also saves
    with Gallery.open(...) as gallery: ...

Thread-safety: enrol/identify/rebuild may be called from several threads; the gallery
serialises writes internally.
"""
