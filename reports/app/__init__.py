"""The app: a local web app over the store (``python -m reports serve``); see docs/app.md.

``server`` builds the Starlette application and serves it with uvicorn; ``views`` (boards, run list),
``runpage`` (a run: metrics with intervals, per-class, confusion, calibration), ``compare`` (two runs),
``samples`` (sample pages, galleries, images and thumbnails) and ``reviewpage`` (review screens) answer the
URLs; ``review`` keeps reviewers' answers in the store and aggregates them; ``classes`` fills the store's
``classes`` table; ``static`` ships the JavaScript and CSS."""
