"""ActivityNet suites: dense video captioning (ActivityNet Captions) and temporal detection/proposals (v1.3).

Plain-function API (no store needed): :func:`densevid.evaluate`, :func:`temporal.evaluate_detection`,
:func:`temporal.evaluate_proposals`; file readers in :mod:`.formats`.  Store-backed suites:
``ANET_CAPTIONS`` and ``ANET_DETECTION`` in :mod:`.suites`.
"""
