"""Results of a run, generated from its files, never typed: schema (results.json's version and
reader), tables (rows and the renderer), figures (matplotlib set-up and charts), replica_scaling
(data-parallel tables and figure), markdown (report.md and write_report), compare (two runs)."""
