-- PostgreSQL indexes observations and traces per (project, user/session) in this migration. DuckDB scans
-- columns fast and its ART indexes would slow bulk ingestion, so it adds none (kept for the numbering).
SELECT 1;
