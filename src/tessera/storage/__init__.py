"""Storage: tables, repositories and migrations. SQLite by default, PostgreSQL for replicas."""
