-- Helpers the query compiler (costline/store/query_sql.py) uses on PostgreSQL.
-- The concatenation of a group's text arrays (DuckDB spells it flatten(list(x))).
CREATE AGGREGATE costline_array_cat_agg (text[]) (
    SFUNC = array_cat,
    STYPE = text[],
    INITCOND = '{}'
);
