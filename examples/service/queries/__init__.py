"""The service's queries: what a request reads from a database, and what it answers.

Rules:
- A query takes a leased `Entry` (the route holds the lease) and parameters already in
  Python form, runs the storage operations it needs (each one `await drive(op, io)`
  through `bridge.storage.AsyncDatabase`), and returns the body: a response model, or a
  dict in the order the body shows its fields.
- A query knows no request and no URL: where a body links to its next page, the route
  passes `link(after)`, which makes that URL.
- A query refuses what it cannot answer with `errors.ServiceError` (404 for an unknown
  table or row, 422 for a bad parameter, naming it); what the storage engine raises passes
  through to `errors.py`, which maps it.
- Pages use keyset pagination (`paging.py`): a page ends with the key of its last row,
  and the next page is a fresh read after that key, so a deep page costs what the first
  one does.
"""
