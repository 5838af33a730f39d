-- Helpers the query compiler (costline/store/query_sql.py) uses; PostgreSQL has the same names.
-- The concatenation of a group's text lists.
CREATE MACRO costline_array_cat_agg(x) AS flatten(list(x));
