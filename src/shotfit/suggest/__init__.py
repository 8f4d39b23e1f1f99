"""``shotfit suggest``: which frames an artist should paint.

Before painting, :mod:`~shotfit.suggest.choose` picks the frames that cover the shot's appearance
(:mod:`~shotfit.suggest.features`), cut by cut; after a run, :mod:`~shotfit.suggest.confidence` ranks the
unpainted frames by predicted error and :mod:`~shotfit.suggest.sheet` draws the worst. The request and
result (:mod:`~shotfit.suggest.request`) import nothing heavy; :func:`shotfit.api.suggest` is the entry.
"""
