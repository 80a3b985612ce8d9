"""OTLP/HTTP metrics ingest (docs/otlp.md): `body` decodes an export and encodes the
answers, `mapping` turns its data points into application metric points and agent
vitals; the route (api/routes/otlp.py) checks and writes them with the /v1 and /api
write paths."""
