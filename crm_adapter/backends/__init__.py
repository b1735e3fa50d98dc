"""Remote customer directories (the company's own CRM), one module per kind.

`http` holds what they share: timeouts, retries with back-off, and the
translation of transport failures into `errors.CRMUnavailable`.
"""
