"""Results: the schema and reader of results.json, tables, figures, the markdown report, run comparison."""
